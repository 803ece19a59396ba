"""RTMP play of one live stream, packetized once for all its players.

A `StreamPlayout` reads the stream's packets through one `Subscription` (one task per played stream,
woken once per batch the publisher's read delivered) and turns each into RTMP chunk bytes once: the
FLV tag body, cut into chunks at the players' chunk size, behind a format 1 or 2 header whose
timestamp is the delta from the previous message of the same chunk stream (as nginx-rtmp prepares a
message once for every subscriber). A player that received that previous message takes the shared
bytes as they are, and a batch whose messages are all shared goes out as one joined buffer: per
player, a batch costs a dictionary check and one ``transport.write``.

Timestamps start near 0 for every player: a `PlayoutPlayer`'s first message on a chunk stream (and any
whose delta cannot be shared: time going backwards, a gap of 4.6 hours, a timestamp before the
player's start) gets a format 0 header of its own with its rebased timestamp, in front of the shared
chunked payload. Data messages (``onMetaData``) go through the player's own `ChunkWriter`, whose
chunk stream also carries its status commands.

A new player gets the codec configuration and the GOP cached since the last keyframe at once. Slow
players do not slow the others: while a player's socket buffer is over its high mark its batches
are held (referenced, not copied); it is dropped when more than its queue size of messages is held,
or when it has not drained within ``drain_timeout``. The playout ends when its last player leaves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from media_engine.packets import MediaPacket, TrackKind
from media_engine.registry import GOP_CACHE_MAX_PACKETS, LiveStream
from media_engine.rtmp import flv
from media_engine.rtmp.chunks import ChunkWriter, chunked_payload, message_header

logger = logging.getLogger(__name__)

# Chunk stream ids of what we send (the values nginx-rtmp uses).
CSID_STREAM = 5  # onStatus and data messages of a NetStream
CSID_AUDIO = 6
CSID_VIDEO = 7

# Messages a player may be behind (held while its socket is full) before it is dropped, as the
# registry's subscription queues allow (more if the cached GOP is longer).
PLAYER_QUEUE = 2048
_EXTENDED = 0xFFFFFF


def csid_for(packet: MediaPacket) -> int:
    if packet.kind is TrackKind.VIDEO:
        return CSID_VIDEO
    if packet.kind is TrackKind.AUDIO:
        return CSID_AUDIO
    return CSID_STREAM


class PlayoutEnd:
    """Why a playout stopped sending to a player (``PlayoutPlayer.on_end``'s argument)."""

    ENDED = "ended"  # the publisher is gone
    TOO_SLOW = "too slow"  # more than its queue held, or the playout itself fell behind
    NOT_READING = "not reading"  # its socket did not drain within drain_timeout


class _Message:
    """One packet as RTMP chunk bytes, made once per stream."""

    __slots__ = ("seq", "prev", "csid", "type_id", "dts", "config", "body", "rest", "shared")

    def __init__(
        self,
        seq: int,
        prev: int,
        csid: int,
        type_id: int,
        dts: int,
        config: bool,
        body: bytes,
        rest: bytes | None,
        shared: bytes | None,
    ) -> None:
        self.seq = seq  # order of the message in the stream
        self.prev = prev  # seq of the previous message of its chunk stream (the base of its delta)
        self.csid = csid
        self.type_id = type_id
        self.dts = dts
        self.config = config
        self.body = body  # the FLV tag body
        self.rest = rest  # the body in chunks, after the first header (None: a data message)
        self.shared = shared  # the format 1/2 header before rest (None: each player needs a header of its own)


class PlayoutPlayer:
    """One RTMP player of a `StreamPlayout`: where its bytes go and what it has been sent.

    ``writer`` is the session's chunk writer (data messages, and its chunk size); ``on_end(reason)``
    is called once when the playout stops sending to it (see `PlayoutEnd`).
    """

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        writer: ChunkWriter,
        stream_id: int,
        on_end: Callable[[str], None],
        drain_timeout: float,
        on_sent: Callable[[int], None] | None = None,
    ) -> None:
        self.transport = transport
        self.writer = writer
        self.stream_id = stream_id
        self.on_end = on_end
        self.drain_timeout = drain_timeout
        self.on_sent = on_sent
        self.base: int | None = None  # the stream's dts that is this player's 0
        self.last: dict[int, int] = {}  # csid -> seq of the last message sent with its exact timestamp
        self.limit = PLAYER_QUEUE
        self.paused = False
        self.done = False
        self._held: list[bytes] = []
        self._held_count = 0
        self._timer: asyncio.TimerHandle | None = None

    def send(self, data: bytes, count: int) -> int:
        """Write ``data`` (``count`` messages) now, or hold it while paused; the bytes written."""
        if self.done:
            return 0
        if self.paused:
            self._held.append(data)
            self._held_count += count
            if self._held_count > self.limit:
                self.end(PlayoutEnd.TOO_SLOW)
            return 0
        if self.transport.is_closing():
            return 0
        self.transport.write(data)
        return len(data)

    def pause(self) -> None:
        """The socket buffer is over its high mark: hold what comes, for drain_timeout at most."""
        if self.paused or self.done:
            return
        self.paused = True
        self._timer = asyncio.get_running_loop().call_later(self.drain_timeout, self.end, PlayoutEnd.NOT_READING)

    def resume(self) -> None:
        """The socket drained: write what was held."""
        if not self.paused:
            return
        self.paused = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write what is held now, paused or not (before the last words to a player)."""
        held, self._held, self._held_count = self._held, [], 0
        if held and not self.done and not self.transport.is_closing():
            data = b"".join(held)
            self.transport.write(data)
            if self.on_sent is not None:
                self.on_sent(len(data))

    def end(self, reason: str) -> None:
        if self.done:
            return
        if reason == PlayoutEnd.ENDED:
            self.flush()  # what was held goes before the player is told the stream ended
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if reason != PlayoutEnd.ENDED:
            self._held, self._held_count = [], 0
        self.on_end(reason)

    def stop(self) -> None:
        """The player left (no ``on_end``)."""
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._held, self._held_count = [], 0


class StreamPlayout:
    """The RTMP bytes of one live stream at one chunk size, sent to every player of it."""

    def __init__(self, stream: LiveStream, chunk_size: int) -> None:
        self.stream = stream
        self.chunk_size = chunk_size
        self.players: list[PlayoutPlayer] = []
        self._subscription = stream.subscribe()
        self._seq = 0
        self._last: dict[int, tuple[int, int, int, int]] = {}  # csid -> (seq, dts, length, type_id)
        self._configs: dict[TrackKind, _Message] = {}
        self._gop: list[_Message] = []
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    # -- players ---------------------------------------------------------------------------

    def join(self, player: PlayoutPlayer) -> None:
        """Send ``player`` the codec configuration and the cached GOP, then everything that comes."""
        kinds = (TrackKind.DATA, TrackKind.VIDEO, TrackKind.AUDIO)
        cached = [self._configs[kind] for kind in kinds if kind in self._configs]
        cached += self._gop
        player.limit = max(PLAYER_QUEUE, len(self._gop) + 8)
        self.players.append(player)
        if cached:
            parts: list[bytes] = []
            for m in cached:
                self._parts_for(player, m, parts)
            sent = player.send(b"".join(parts), len(cached))
            if sent:
                self.stream.counters.sent(sent)

    def leave(self, player: PlayoutPlayer) -> None:
        player.stop()
        if player in self.players:
            self.players.remove(player)
        if not self.players:
            self.close()

    def close(self) -> None:
        """No one plays any more (or the stream ended): stop reading the stream."""
        if self._closed:
            return
        self._closed = True
        _playouts.pop((self.stream, self.chunk_size), None)
        self._subscription.close()
        if self._task is not asyncio.current_task():
            self._task.cancel()

    # -- the stream ------------------------------------------------------------------------

    async def _run(self) -> None:
        subscription = self._subscription
        ended = False
        try:
            while not ended:
                packets = [await subscription.get()]
                packets += subscription.drain()
                messages = []
                for packet in packets:
                    if packet is None:
                        ended = True
                        break
                    message = self._encode(packet)
                    if message is not None:
                        messages.append(message)
                if messages and self.players:
                    self._fan_out(messages)
        except Exception:
            logger.exception("rtmp playout of %s failed", self.stream.key)
            ended = True
        reason = PlayoutEnd.TOO_SLOW if subscription.overflowed else PlayoutEnd.ENDED
        if subscription.overflowed:
            logger.info("rtmp playout of %s fell behind the stream: dropping its players", self.stream.key)
        self.close()
        players, self.players = self.players, []
        for player in players:
            player.end(reason)

    def _encode(self, packet: MediaPacket) -> _Message | None:
        converted = flv.message_body(packet)
        if converted is None:
            return None
        type_id, body = converted
        csid = csid_for(packet)
        self._seq += 1
        seq = self._seq
        if csid == CSID_STREAM:
            message = _Message(seq, -1, csid, type_id, packet.dts, packet.config, body, None, None)
        else:
            length = len(body)
            rest = chunked_payload(csid, body, self.chunk_size)
            prev, shared = -1, None
            last = self._last.get(csid)
            if last is not None:
                delta = packet.dts - last[1]
                if 0 <= delta < _EXTENDED:
                    prev = last[0]
                    if last[2] == length and last[3] == type_id:
                        shared = message_header(2, csid, delta)
                    else:
                        shared = message_header(1, csid, delta, length, type_id)
            self._last[csid] = (seq, packet.dts, length, type_id)
            message = _Message(seq, prev, csid, type_id, packet.dts, packet.config, body, rest, shared)
        # The same caches as the stream's, in RTMP form.
        if packet.config:
            self._configs[packet.kind] = message
        elif packet.kind is TrackKind.VIDEO and packet.keyframe:
            self._gop = [message]
        elif self._gop and len(self._gop) < GOP_CACHE_MAX_PACKETS:
            self._gop.append(message)
        return message

    def _fan_out(self, messages: list[_Message]) -> None:
        count = len(messages)
        shared = all(m.shared is not None for m in messages)
        if shared:
            entry: dict[int, int] = {}
            exit_: dict[int, int] = {}
            for m in messages:
                entry.setdefault(m.csid, m.prev)
                exit_[m.csid] = m.seq
            first_dts = min(m.dts for m in messages)
            parts: list[bytes] = []
            for m in messages:
                parts.append(m.shared)  # type: ignore[arg-type]
                parts.append(m.rest)  # type: ignore[arg-type]
            joined = b"".join(parts)
            items = entry.items()
        sent = 0
        dropped = False
        for player in tuple(self.players):
            if player.done:
                dropped = True
                continue
            if shared:
                base = player.base
                last = player.last
                if base is not None and first_dts >= base and all(last.get(c) == p for c, p in items):
                    last.update(exit_)
                    sent += player.send(joined, count)
                    dropped = dropped or player.done
                    continue
            parts = []
            for m in messages:
                self._parts_for(player, m, parts)
            sent += player.send(b"".join(parts), count)
            dropped = dropped or player.done
        if sent:
            self.stream.counters.sent(sent)
        if dropped:  # (their sessions leave too, later: that finds them gone)
            self.players = [player for player in self.players if not player.done]

    def _parts_for(self, player: PlayoutPlayer, m: _Message, parts: list[bytes]) -> None:
        """Append ``m`` for ``player``: the shared header if it can take it, else one of its own."""
        base = player.base
        if m.config:
            exact = base is not None and m.dts >= base
            timestamp = m.dts - base if exact else 0  # type: ignore[operator]
        else:
            if base is None:
                base = player.base = m.dts
            exact = m.dts >= base
            timestamp = m.dts - base if exact else 0
        if m.rest is None:  # a data message: the player's own writer (its chunk stream carries commands too)
            parts.append(player.writer.write(m.csid, m.type_id, player.stream_id, timestamp, m.body))
            return
        csid = m.csid
        if exact and m.shared is not None and player.last.get(csid) == m.prev:
            player.last[csid] = m.seq
            parts.append(m.shared)
            parts.append(m.rest)
            return
        if exact:
            player.last[csid] = m.seq
        else:
            player.last.pop(csid, None)
        if timestamp >= _EXTENDED:  # (a player 4.6 hours in, after a jump: whole message of its own)
            parts.append(ChunkWriter(self.chunk_size).write(csid, m.type_id, player.stream_id, timestamp, m.body))
            return
        parts.append(message_header(0, csid, timestamp, len(m.body), m.type_id, player.stream_id))
        parts.append(m.rest)


_playouts: dict[tuple[LiveStream, int], StreamPlayout] = {}


def play(stream: LiveStream, player: PlayoutPlayer) -> StreamPlayout:
    """Add ``player`` to the playout of ``stream`` at its chunk size (started if it is the first)."""
    key = (stream, player.writer.chunk_size)
    playout = _playouts.get(key)
    if playout is None:
        playout = _playouts[key] = StreamPlayout(stream, player.writer.chunk_size)
    playout.join(player)
    return playout
