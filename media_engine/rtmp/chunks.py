"""The RTMP chunk stream: splitting messages into chunks and reassembling them, without sockets.

`ChunkReader` is fed the bytes that follow the handshake and returns whole `Message` objects;
it applies Set Chunk Size and Abort itself (they change how the following bytes are cut).
`ChunkWriter` turns messages into chunk bytes and builds the protocol control messages.
Malformed or abusive input (unknown chunk stream, absurd sizes) raises ``ValueError``.

Memory a peer can hold: a message's declared length is checked against what its type ever needs
before any of it is kept (`RtmpLimits`); the bytes of incomplete messages (and of a chunk not yet
whole) are capped per connection, and across a node by a shared `PendingBudget` that, when over,
drops the connections holding the most.
"""

from __future__ import annotations

import enum
import resource
import struct
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_CHUNK_SIZE = 128
# Limits against abusive peers. A message length is a 24-bit field (16 MiB) and a chunk size above
# it is never useful. Real media messages are far smaller: a 4K H.264/HEVC keyframe is a few MB.
MAX_CHUNK_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE = 8 * 1024 * 1024  # video and aggregate messages
MAX_AUDIO_MESSAGE_SIZE = 1024 * 1024  # an AAC/MP3/Opus frame is a few KB, even PCM stays far below
MAX_COMMAND_MESSAGE_SIZE = 1024 * 1024  # commands, metadata, shared objects
MAX_CONTROL_MESSAGE_SIZE = 64  # protocol control and user control messages: a few bytes
MAX_PENDING_BYTES = 16 * 1024 * 1024  # per connection: one big video message and audio in progress
MAX_NODE_PENDING_BYTES = 256 * 1024 * 1024  # every connection of a node together
MAX_CHUNK_STREAMS = 256
MAX_CONNECTIONS = 5000  # RTMP connections of a node (publishers, players, media jobs)
# The RTMP cap never goes above this share of the process's open-file limit (the media HTTP port may
# take half, files, WebRTC, the database and Redis need the rest).
FD_SHARE = 0.25

PROTOCOL_CONTROL_CSID = 2
_EXTENDED = 0xFFFFFF
_MASK32 = 0xFFFFFFFF
_HALF32 = 0x80000000

_U32 = struct.Struct(">I")
_U32_LE = struct.Struct("<I")
_U16 = struct.Struct(">H")


class TimestampUnwrapper:
    """Extends 32-bit RTMP timestamps to an int timeline that survives the 49-day wrap (and small
    steps back), for one peer's messages: publish sessions and play clients each keep one."""

    def __init__(self) -> None:
        self._last_raw: int | None = None
        self._last = 0

    def reset(self) -> None:
        self._last_raw = None

    def __call__(self, raw: int) -> int:
        last_raw = self._last_raw
        self._last_raw = raw
        if last_raw is None:
            self._last = raw
            return raw
        diff = (raw - last_raw) & _MASK32
        if diff >= _HALF32:
            diff -= 1 << 32
        self._last += diff
        return self._last


class MessageType(enum.IntEnum):
    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACKNOWLEDGEMENT = 3
    USER_CONTROL = 4
    WINDOW_ACK_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    DATA_AMF3 = 15
    SHARED_OBJECT_AMF3 = 16
    COMMAND_AMF3 = 17
    DATA_AMF0 = 18
    SHARED_OBJECT_AMF0 = 19
    COMMAND_AMF0 = 20
    AGGREGATE = 22


class UserControlEvent(enum.IntEnum):
    STREAM_BEGIN = 0
    STREAM_EOF = 1
    STREAM_DRY = 2
    SET_BUFFER_LENGTH = 3
    STREAM_IS_RECORDED = 4
    PING_REQUEST = 6
    PING_RESPONSE = 7


class PeerBandwidthLimit(enum.IntEnum):
    HARD = 0
    SOFT = 1
    DYNAMIC = 2


@dataclass(slots=True)
class Message:
    """One reassembled RTMP message."""

    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes
    csid: int = 0


def parse_u32(payload: bytes) -> int:
    """The 4-byte big-endian value of a Set Chunk Size / Acknowledgement / Window Ack Size message."""
    if len(payload) < 4:
        raise ValueError("protocol control message shorter than 4 bytes")
    return _U32.unpack_from(payload)[0]


def parse_user_control(payload: bytes) -> tuple[int, bytes]:
    """(event type, event data) of a User Control message."""
    if len(payload) < 2:
        raise ValueError("user control message shorter than 2 bytes")
    return _U16.unpack_from(payload)[0], bytes(payload[2:])


@dataclass(frozen=True)
class RtmpLimits:
    """What RTMP peers may make the engine hold: ``max_message_size`` bytes for a video (or
    aggregate) message, ``max_pending_bytes`` in incomplete messages per connection,
    ``max_node_pending_bytes`` for all connections of a node together, and ``max_connections``
    connections (0: no cap; never more than `FD_SHARE` of the process's open-file limit)."""

    max_message_size: int = MAX_MESSAGE_SIZE
    max_pending_bytes: int = MAX_PENDING_BYTES
    max_node_pending_bytes: int = MAX_NODE_PENDING_BYTES
    max_connections: int = MAX_CONNECTIONS

    def effective_max_connections(self, fd_limit: int | None = None) -> int | None:
        """The connection cap (None: none), at most `FD_SHARE` of the soft open-file limit."""
        if not self.max_connections:
            return None
        if fd_limit is None:
            fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if fd_limit <= 0:
            return self.max_connections
        return max(1, min(self.max_connections, int(fd_limit * FD_SHARE)))


def message_size_limit(type_id: int, max_message_size: int = MAX_MESSAGE_SIZE) -> int:
    """The largest declared length accepted for a message of ``type_id``."""
    if type_id == MessageType.VIDEO or type_id == MessageType.AGGREGATE:
        return max_message_size
    if type_id == MessageType.AUDIO:
        return min(max_message_size, MAX_AUDIO_MESSAGE_SIZE)
    if type_id <= MessageType.SET_PEER_BANDWIDTH:
        return MAX_CONTROL_MESSAGE_SIZE
    return min(max_message_size, MAX_COMMAND_MESSAGE_SIZE)


class PendingBudget:
    """The bytes every `ChunkReader` of a node holds in incomplete messages, under one ``limit``.

    Readers report what they hold after each read; when the total goes over the limit, the readers
    holding the most are evicted (their buffers freed, their connections closed) until it is under.
    """

    def __init__(self, limit: int = MAX_NODE_PENDING_BYTES) -> None:
        self.limit = limit
        self.total = 0
        self.evictions = 0  # readers evicted since start
        self._held: dict[ChunkReader, int] = {}

    def holding(self, reader: ChunkReader) -> int:
        return self._held.get(reader, 0)

    def update(self, reader: ChunkReader, held: int) -> bool:
        """``reader`` now holds ``held`` bytes. False if it has to go (it was among the largest while
        the node was over its limit); other readers evicted meanwhile are told by `ChunkReader.evict`."""
        previous = self._held.get(reader, 0)
        if held == previous:
            return True
        self.total += held - previous
        if held:
            self._held[reader] = held
        else:
            del self._held[reader]
        if self.total <= self.limit:
            return True
        keep = True
        for other, _ in sorted(self._held.items(), key=lambda item: item[1], reverse=True):
            if self.total <= self.limit:
                break
            self.release(other)
            self.evictions += 1
            if other is reader:
                keep = False
            else:
                other.evict()
        return keep

    def release(self, reader: ChunkReader) -> None:
        """``reader`` holds nothing any more (evicted or closed)."""
        self.total -= self._held.pop(reader, 0)


class _ChunkStreamState:
    """What the previous chunk of one chunk stream id said, plus the message being reassembled."""

    __slots__ = ("timestamp", "ts_field", "extended", "length", "type_id", "stream_id", "parts", "received")

    def __init__(self) -> None:
        self.timestamp = 0
        self.ts_field = 0  # last timestamp (fmt 0) or delta (fmt 1/2), reused by fmt 3
        self.extended = False
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.parts: list[bytes] = []
        self.received = 0


class ChunkReader:
    """Reassemble messages from the chunk stream one peer sends.

    ``feed(data)`` may be called with any split of the input and returns the messages it completed.
    After a ``ValueError`` the reader stays broken: the connection should be closed. With a
    ``budget``, the reader counts against the node's limit; ``on_evicted`` is called if the budget
    drops it while another connection reads (its own feed raises ``ValueError`` instead).
    """

    def __init__(
        self,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_chunk_size: int = MAX_CHUNK_SIZE,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        max_chunk_streams: int = MAX_CHUNK_STREAMS,
        *,
        budget: PendingBudget | None = None,
        on_evicted: Callable[[], None] | None = None,
    ) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.max_message_size = max_message_size
        self.max_chunk_size = max_chunk_size
        self.max_pending_bytes = max_pending_bytes
        self.max_chunk_streams = max_chunk_streams
        self.budget = budget
        self.on_evicted = on_evicted
        self._buf = bytearray()
        self._streams: dict[int, _ChunkStreamState] = {}
        self._pending = 0
        self._error: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a whole chunk."""
        return len(self._buf)

    @property
    def held(self) -> int:
        """Bytes kept for later: parts of incomplete messages and the incomplete chunk."""
        return self._pending + len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        if self._error is not None:
            raise ValueError(f"chunk stream already failed: {self._error}")
        self._buf += data
        try:
            messages = self._parse()
            held = self._pending + len(self._buf)
            if held > self.max_pending_bytes:
                raise ValueError(f"{held} bytes in incomplete messages (the limit is {self.max_pending_bytes})")
            if self.budget is not None and not self.budget.update(self, held):
                raise ValueError(f"{held} bytes in incomplete messages while the node is over its limit")
            return messages
        except ValueError as exc:
            self._fail(str(exc))
            raise

    def _fail(self, error: str) -> None:
        """Break the reader for good and free what it holds."""
        self._error = error
        self._buf = bytearray()
        self._streams.clear()
        self._pending = 0
        if self.budget is not None:
            self.budget.release(self)

    def evict(self) -> None:
        """Dropped by the node's budget: free everything now and tell the owner."""
        self._fail("evicted: the node holds too many bytes in incomplete messages")
        if self.on_evicted is not None:
            self.on_evicted()

    def close(self) -> None:
        """The connection is gone: free what the reader holds (and its share of the budget)."""
        if self._error is None:
            self._fail("closed")

    def _state(self, csid: int) -> _ChunkStreamState:
        state = self._streams.get(csid)
        if state is None:
            if len(self._streams) >= self.max_chunk_streams:
                raise ValueError("too many chunk streams")
            state = self._streams[csid] = _ChunkStreamState()
        return state

    def _parse(self) -> list[Message]:  # noqa: C901 - one tight loop is the point here
        buf = self._buf
        n = len(buf)
        pos = 0
        out: list[Message] = []
        streams = self._streams
        view = memoryview(buf)
        try:
            while pos < n:
                start = pos
                b0 = buf[pos]
                fmt = b0 >> 6
                csid = b0 & 0x3F
                pos += 1
                if csid == 0:
                    if pos + 1 > n:
                        pos = start
                        break
                    csid = 64 + buf[pos]
                    pos += 1
                elif csid == 1:
                    if pos + 2 > n:
                        pos = start
                        break
                    csid = 64 + buf[pos] + (buf[pos + 1] << 8)
                    pos += 2

                state = streams.get(csid)
                new_message = state is None or state.received == 0
                length = type_id = stream_id = 0
                if fmt == 0:
                    if pos + 11 > n:
                        pos = start
                        break
                    field = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
                    length = (buf[pos + 3] << 16) | (buf[pos + 4] << 8) | buf[pos + 5]
                    type_id = buf[pos + 6]
                    stream_id = _U32_LE.unpack_from(buf, pos + 7)[0]
                    pos += 11
                elif state is None:
                    raise ValueError(f"chunk of format {fmt} on new chunk stream {csid}")
                elif fmt == 1:
                    if pos + 7 > n:
                        pos = start
                        break
                    field = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
                    length = (buf[pos + 3] << 16) | (buf[pos + 4] << 8) | buf[pos + 5]
                    type_id = buf[pos + 6]
                    stream_id = state.stream_id
                    pos += 7
                elif fmt == 2:
                    if pos + 3 > n:
                        pos = start
                        break
                    field = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
                    length = state.length
                    type_id = state.type_id
                    stream_id = state.stream_id
                    pos += 3
                else:
                    field = _EXTENDED if state.extended else state.ts_field

                # Extended timestamp: always after a 0xFFFFFF field in a header; in a continuation
                # chunk (fmt 3) most senders repeat it and some do not, so it is taken only if it
                # matches the message's value.
                extended_value = -1
                if field == _EXTENDED:
                    if pos + 4 > n:
                        pos = start
                        break
                    value = _U32.unpack_from(buf, pos)[0]
                    if fmt != 3 or new_message:
                        extended_value = value
                        pos += 4
                    elif value == state.ts_field:
                        pos += 4

                if fmt != 3 and not new_message:
                    # A new header in the middle of a message: the sender gave up on the old one.
                    self._pending -= state.received
                    state.parts = []
                    state.received = 0
                    new_message = True

                if new_message:
                    # Checked on the header, before a byte of the message is kept.
                    if fmt != 3 and length > message_size_limit(type_id, self.max_message_size):
                        raise ValueError(f"message of type {type_id} and {length} bytes is too large")
                    message_length = length if fmt != 3 else state.length
                    received = 0
                else:
                    message_length = state.length
                    received = state.received
                take = message_length - received
                if take > self.chunk_size:
                    take = self.chunk_size
                if pos + take > n:
                    pos = start
                    break

                # The whole chunk is here: commit it.
                if state is None:
                    state = self._state(csid)
                if new_message:
                    value = extended_value if field == _EXTENDED else field
                    if fmt == 0:
                        state.timestamp = value
                        state.ts_field = value
                    else:
                        state.timestamp = (state.timestamp + value) & _MASK32
                        if fmt != 3:
                            state.ts_field = value
                    state.extended = field == _EXTENDED
                    if fmt != 3:
                        state.length = length
                        state.type_id = type_id
                        state.stream_id = stream_id
                end = pos + take
                if received == 0 and take == message_length:
                    payload = bytes(view[pos:end])
                else:
                    state.parts.append(bytes(view[pos:end]))
                    state.received = received + take
                    if state.received < message_length:
                        self._pending += take
                        if self._pending > self.max_pending_bytes:
                            raise ValueError(f"more than {self.max_pending_bytes} bytes in incomplete messages")
                        pos = end
                        continue
                    self._pending -= received
                    payload = b"".join(state.parts)
                    state.parts = []
                    state.received = 0
                pos = end
                message = Message(state.type_id, state.stream_id, state.timestamp, payload, csid)
                if message.type_id == MessageType.SET_CHUNK_SIZE:
                    self._set_chunk_size(payload)
                elif message.type_id == MessageType.ABORT:
                    self._abort(payload)
                out.append(message)
        finally:
            view.release()
        if pos:
            del buf[:pos]
        return out

    def _set_chunk_size(self, payload: bytes) -> None:
        size = parse_u32(payload) & 0x7FFFFFFF
        if size < 1 or size > self.max_chunk_size:
            raise ValueError(f"unacceptable chunk size {size}")
        self.chunk_size = size

    def _abort(self, payload: bytes) -> None:
        state = self._streams.get(parse_u32(payload))
        if state is not None and state.received:
            self._pending -= state.received
            state.parts = []
            state.received = 0


def _basic_header(fmt: int, csid: int) -> bytes:
    if 2 <= csid <= 63:
        return bytes(((fmt << 6) | csid,))
    if 64 <= csid <= 319:
        return bytes((fmt << 6, csid - 64))
    if 320 <= csid <= 65599:
        rest = csid - 64
        return bytes(((fmt << 6) | 1, rest & 0xFF, rest >> 8))
    raise ValueError(f"invalid chunk stream id {csid}")


class ChunkWriter:
    """Cut outgoing messages into chunks, remembering per chunk stream what the peer already knows.

    A new message gets a full header (format 0) when its chunk stream is new, its message stream
    changes or time goes backwards, else a format 1 or 2 header with the timestamp delta. Format 3
    is used only for continuation chunks, which is what every reader agrees on.
    """

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.chunk_size = chunk_size
        # csid -> (timestamp, length, type_id, stream_id)
        self._last: dict[int, tuple[int, int, int, int]] = {}

    def write(self, csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes) -> bytes:
        """The chunks of one message."""
        timestamp &= _MASK32
        length = len(payload)
        if length > 0xFFFFFF:
            raise ValueError("message longer than 16 MiB")
        last = self._last.get(csid)
        if last is None or last[3] != stream_id or timestamp < last[0]:
            field = timestamp
            fmt = 0
        elif last[1] != length or last[2] != type_id:
            field = timestamp - last[0]
            fmt = 1
        else:
            field = timestamp - last[0]
            fmt = 2
        self._last[csid] = (timestamp, length, type_id, stream_id)

        extended = field >= _EXTENDED
        header_field = _EXTENDED if extended else field
        parts = [_basic_header(fmt, csid), header_field.to_bytes(3, "big")]
        if fmt <= 1:
            parts.append(length.to_bytes(3, "big"))
            parts.append(bytes((type_id,)))
            if fmt == 0:
                parts.append(_U32_LE.pack(stream_id))
        ext = _U32.pack(field) if extended else b""
        parts.append(ext)

        chunk_size = self.chunk_size
        if length <= chunk_size:
            parts.append(payload)
            return b"".join(parts)
        continuation = _basic_header(3, csid) + ext
        view = memoryview(payload)
        parts.append(view[:chunk_size])
        for offset in range(chunk_size, length, chunk_size):
            parts.append(continuation)
            parts.append(view[offset : offset + chunk_size])
        return b"".join(parts)

    # Protocol control messages (chunk stream 2, message stream 0).

    def control(self, type_id: int, payload: bytes) -> bytes:
        return self.write(PROTOCOL_CONTROL_CSID, type_id, 0, 0, payload)

    def set_chunk_size(self, size: int) -> bytes:
        """Announce a new outgoing chunk size and use it for every later message."""
        if not 1 <= size <= MAX_CHUNK_SIZE:
            raise ValueError(f"unacceptable chunk size {size}")
        data = self.control(MessageType.SET_CHUNK_SIZE, _U32.pack(size))
        self.chunk_size = size
        return data

    def abort(self, csid: int) -> bytes:
        return self.control(MessageType.ABORT, _U32.pack(csid))

    def acknowledgement(self, sequence_number: int) -> bytes:
        return self.control(MessageType.ACKNOWLEDGEMENT, _U32.pack(sequence_number & _MASK32))

    def window_ack_size(self, size: int) -> bytes:
        return self.control(MessageType.WINDOW_ACK_SIZE, _U32.pack(size))

    def set_peer_bandwidth(self, size: int, limit: int = PeerBandwidthLimit.DYNAMIC) -> bytes:
        return self.control(MessageType.SET_PEER_BANDWIDTH, _U32.pack(size) + bytes((limit,)))

    def user_control(self, event: int, *values: int) -> bytes:
        """A User Control message whose data is 32-bit values (stream id, timestamp, buffer length)."""
        payload = _U16.pack(event) + b"".join(_U32.pack(v & _MASK32) for v in values)
        return self.control(MessageType.USER_CONTROL, payload)


def message_header(fmt: int, csid: int, field: int, length: int = 0, type_id: int = 0, stream_id: int = 0) -> bytes:
    """The first chunk's header of a message of format 0, 1 or 2 (``field``: the timestamp or its
    delta, below 0xFFFFFF: callers that need an extended timestamp use `ChunkWriter`)."""
    if not 0 <= field < _EXTENDED:
        raise ValueError(f"timestamp field {field} needs an extended timestamp")
    header = _basic_header(fmt, csid) + field.to_bytes(3, "big")
    if fmt <= 1:
        header += length.to_bytes(3, "big") + bytes((type_id,))
        if fmt == 0:
            header += _U32_LE.pack(stream_id)
    return header


def chunked_payload(csid: int, payload: bytes, chunk_size: int) -> bytes:
    """A message's payload cut into chunks as it follows its first header: the first ``chunk_size``
    bytes, then format 3 continuation chunks (no extended timestamp, see `message_header`)."""
    length = len(payload)
    if length <= chunk_size:
        return payload
    continuation = _basic_header(3, csid)
    view = memoryview(payload)
    parts = [view[:chunk_size]]
    for offset in range(chunk_size, length, chunk_size):
        parts.append(continuation)
        parts.append(view[offset : offset + chunk_size])
    return b"".join(parts)
