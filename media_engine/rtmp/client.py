"""An asyncio RTMP *play* client: pull one stream from another RTMP server as `MediaPacket`s.

`RtmpPlayer` does the client handshake, ``connect``, ``createStream`` and ``play``, then turns the
audio/video/data messages it reads into `MediaPacket`s exactly as a publisher's are on the publish
path (`flv.FlvDemuxer`, 32-bit timestamps unwrapped), answering pings and acknowledging what it read
as the server's window asks. It plays from this engine's RTMP server and from third-party servers
(nginx-rtmp). Used by the mirrors of `media_engine.relay.mirror`; it knows no registry.

The URL may carry credentials (an internal job token): it is logged only through `redact_url`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from media_engine.internal_auth import redact_url
from media_engine.packets import MediaPacket
from media_engine.rtmp import amf0, flv
from media_engine.rtmp.chunks import (
    ChunkReader,
    ChunkWriter,
    Message,
    MessageType,
    TimestampUnwrapper,
    UserControlEvent,
    parse_u32,
    parse_user_control,
)
from media_engine.rtmp.handshake import HANDSHAKE_SIZE, client_c0c1

logger = logging.getLogger(__name__)

DEFAULT_PORT = 1935
READ_SIZE = 65536
# What we ask the server to buffer for us (Set Buffer Length, ms), as ffmpeg does.
BUFFER_LENGTH_MS = 3000
# Our own acknowledgement window (the server acknowledges our few commands; nothing depends on it).
CLIENT_WINDOW_ACK_SIZE = 2_500_000
CSID_COMMAND = 3
CSID_STREAM = 8

_AUDIO = MessageType.AUDIO
_VIDEO = MessageType.VIDEO
_DATA = MessageType.DATA_AMF0

# onStatus codes that end a play: the stream is gone on the server.
_END_CODES = frozenset({"NetStream.Play.UnpublishNotify", "NetStream.Play.Stop", "NetStream.Play.Complete"})

PacketHandler = Callable[[MediaPacket], None]


class PlayError(Exception):
    """The server refused the connect or the play (unknown application or stream, access denied)."""


def split_url(url: str) -> tuple[str, int, str, str, str]:
    """(host, port, app, play name with its query, tcUrl) of ``rtmp://host[:port]/app/name[?query]``."""
    parts = urlsplit(url)
    if parts.scheme != "rtmp" or not parts.hostname:
        raise ValueError(f"not an rtmp:// URL: {redact_url(url)}")
    app, _, name = parts.path.lstrip("/").partition("/")
    if not app or not name:
        raise ValueError(f"an RTMP play URL needs an application and a stream name: {redact_url(url)}")
    if parts.query:
        name = f"{name}?{parts.query}"
    port = parts.port or DEFAULT_PORT
    return parts.hostname, port, app, name, f"rtmp://{parts.hostname}:{port}/{app}"


class RtmpPlayer:
    """Play ``url`` and hand every packet to ``on_packet`` (called on the event loop, in order).

    ``await start()`` connects and returns once the server said ``NetStream.Play.Start`` (PlayError
    if it refused, OSError/TimeoutError if it cannot be reached in ``connect_timeout`` s); ``await
    run()`` then reads until the server ends the stream or the connection, sends nothing for
    ``idle_timeout`` s (a peer gone without a word), or ``close()`` is called; it returns then.
    ``bytes_in`` counts every byte read from the server.
    """

    def __init__(
        self, url: str, on_packet: PacketHandler, *, connect_timeout: float = 5.0, idle_timeout: float = 30.0
    ) -> None:
        self.url = url
        self.on_packet = on_packet
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.host, self.port, self.app, self.name, self.tc_url = split_url(url)
        self.bytes_in = 0
        self.ended_by = ""  # why run() returned: an onStatus code, "eof", "closed"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._chunks_in = ChunkReader()
        self._chunks_out = ChunkWriter()
        self._pending: list[Message] = []
        self._txn = 0.0
        self._stream_id = 0
        self._window = 0
        self._last_ack = 0
        self._demuxer = flv.FlvDemuxer(redact_url(url))
        self._unwrap = TimestampUnwrapper()
        self._closed = False

    def __repr__(self) -> str:
        return f"RtmpPlayer({redact_url(self.url)})"

    # -- connecting ------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self._start()
        except BaseException:
            self.close()
            raise

    async def _start(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        c0c1 = client_c0c1()
        self._writer.write(c0c1)
        s0s1s2 = await self._reader.readexactly(1 + 2 * HANDSHAKE_SIZE)
        if s0s1s2[0] != c0c1[0]:
            raise PlayError(f"the server answered RTMP version {s0s1s2[0]}")
        self._writer.write(s0s1s2[1 : 1 + HANDSHAKE_SIZE])  # C2 echoes S1
        self.bytes_in += len(s0s1s2)

        connect = {
            "app": self.app,
            "flashVer": "LNX 9,0,124,2",
            "tcUrl": self.tc_url,
            "fpad": False,
            "capabilities": 15.0,
            "audioCodecs": 4071.0,
            "videoCodecs": 252.0,
            "videoFunction": 1.0,
        }
        reply = await self._call("connect", connect)
        if reply[0] != "_result":
            raise PlayError(f"connect refused: {_describe(reply)}")
        self._send(self._chunks_out.window_ack_size(CLIENT_WINDOW_ACK_SIZE))
        reply = await self._call("createStream", None)
        if reply[0] != "_result" or len(reply) < 4 or not isinstance(reply[3], float):
            raise PlayError(f"createStream refused: {_describe(reply)}")
        self._stream_id = int(reply[3])
        self._send_command(CSID_STREAM, self._stream_id, "play", 0.0, None, self.name, -2000.0)
        self._send(self._chunks_out.user_control(UserControlEvent.SET_BUFFER_LENGTH, self._stream_id, BUFFER_LENGTH_MS))
        while True:
            values = await self._next_command()
            if values and values[0] == "onStatus":
                code = _status_code(values)
                if code in ("NetStream.Play.Start", "NetStream.Play.Reset"):
                    if code == "NetStream.Play.Start":
                        break
                    continue
                if code.startswith("NetStream.Play."):
                    raise PlayError(f"play refused: {code}")
        logger.info("rtmp client: playing %s", redact_url(self.url))

    async def _call(self, name: str, *args: Any) -> list[Any]:
        """Send a command on the NetConnection and wait for its _result/_error."""
        self._txn += 1
        txn = self._txn
        self._send_command(CSID_COMMAND, 0, name, txn, *args)
        while True:
            values = await self._next_command()
            if len(values) >= 2 and values[0] in ("_result", "_error") and values[1] == txn:
                return values
            if values and values[0] == "onStatus" and _status_code(values).endswith(("Rejected", "Failed")):
                return values

    # -- reading ---------------------------------------------------------------------------

    async def _next_command(self) -> list[Any]:
        """The values of the next AMF0 command from the server; other messages are handled on the way."""
        while True:
            message = await self._next_message()
            if message.type_id == MessageType.COMMAND_AMF0:
                return amf0.decode_all(message.payload)
            self._handle(message)

    async def _next_message(self) -> Message:
        while not self._pending:
            self._pending.extend(await self._read())
        return self._pending.pop(0)

    async def _read(self) -> list[Message]:
        assert self._reader is not None
        data = await self._reader.read(READ_SIZE)
        if not data:
            raise ConnectionResetError("the server closed the connection")
        self.bytes_in += len(data)
        messages = self._chunks_in.feed(data)
        if self._window and self.bytes_in - self._last_ack >= self._window:
            self._last_ack = self.bytes_in
            self._send(self._chunks_out.acknowledgement(self.bytes_in))
        return messages

    async def run(self) -> None:
        """Read and relay packets until the stream or the connection ends (``ended_by`` says which)."""
        loop = asyncio.get_running_loop()
        try:
            pending, self._pending = self._pending, []
            for message in pending:
                if self._handle(message):
                    return
            async with asyncio.timeout(self.idle_timeout) as silence:
                while not self._closed:
                    messages = await self._read()
                    silence.reschedule(loop.time() + self.idle_timeout)
                    for message in messages:
                        if self._handle(message):
                            return
        except TimeoutError:
            self.ended_by = "timeout"
            logger.info("rtmp client %s: nothing received for %.0f s", redact_url(self.url), self.idle_timeout)
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as error:
            if not self.ended_by:
                self.ended_by = "closed" if self._closed else "eof"
            logger.debug("rtmp client %s: connection ended: %r", redact_url(self.url), error)
        except ValueError as error:  # malformed chunks, FLV or AMF0 from the server
            self.ended_by = "bad input"
            logger.info("rtmp client %s: bad input from the server: %s", redact_url(self.url), error)
        finally:
            self.close()

    def _handle(self, message: Message) -> bool:
        """Act on one message; True when it ends the play."""
        type_id = message.type_id
        if type_id == _VIDEO or type_id == _AUDIO or type_id == _DATA:
            if message.stream_id == self._stream_id or self._stream_id == 0:
                self._on_media(type_id, message.timestamp, message.payload)
        elif type_id == MessageType.AGGREGATE:
            for sub_type, timestamp, body in flv.split_aggregate(message.payload, message.timestamp):
                if sub_type == _VIDEO or sub_type == _AUDIO or sub_type == _DATA:
                    self._on_media(sub_type, timestamp, body)
        elif type_id == MessageType.USER_CONTROL:
            event, data = parse_user_control(message.payload)
            if event == UserControlEvent.PING_REQUEST:
                self._send(self._chunks_out.user_control(UserControlEvent.PING_RESPONSE, parse_u32(data)))
            elif event == UserControlEvent.STREAM_EOF and self._stream_id and parse_u32(data) == self._stream_id:
                logger.debug("rtmp client %s: stream EOF", redact_url(self.url))
        elif type_id == MessageType.WINDOW_ACK_SIZE:
            self._window = parse_u32(message.payload)
        elif type_id == MessageType.COMMAND_AMF0:
            values = amf0.decode_all(message.payload)
            if values and values[0] == "onStatus" and _status_code(values) in _END_CODES:
                self.ended_by = _status_code(values)
                logger.info("rtmp client %s: %s", redact_url(self.url), self.ended_by)
                return True
        return False

    def _on_media(self, type_id: int, timestamp: int, body: bytes) -> None:
        if type_id == _DATA:
            # |RtmpSampleAccess and the like are the server's words to a Flash player, not stream data.
            if body[:2] == b"\x02\x00" and body[3:4] == b"|":
                return
            packet = self._demuxer.data(body, timestamp)
        else:
            ts = self._unwrap(timestamp)
            packet = self._demuxer.video(body, ts) if type_id == _VIDEO else self._demuxer.audio(body, ts)
        if packet is not None:
            self.on_packet(packet)

    # -- writing ---------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    def _send_command(self, csid: int, stream_id: int, *values: Any) -> None:
        self._send(self._chunks_out.write(csid, MessageType.COMMAND_AMF0, stream_id, 0, amf0.encode(*values)))

    def close(self) -> None:
        """Leave: deleteStream if playing, then drop the connection."""
        if self._closed:
            return
        self._closed = True
        if not self.ended_by:
            self.ended_by = "closed"
        if self._writer is not None:
            if self._stream_id:
                self._send_command(CSID_COMMAND, 0, "deleteStream", 0.0, None, float(self._stream_id))
            self._writer.close()
        self._chunks_in.close()


def _status_code(values: list[Any]) -> str:
    info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
    code = info.get("code")
    return code if isinstance(code, str) else ""


def _describe(values: list[Any]) -> str:
    info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
    return str(info.get("code") or info.get("description") or values[0])
