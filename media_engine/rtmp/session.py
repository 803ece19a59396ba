"""One RTMP connection: handshake, NetConnection/NetStream commands, and publishing or playing.

`RtmpSession` is an asyncio protocol: bytes are parsed as they arrive (no reader task per
connection), a publisher's audio/video/data messages become `MediaPacket`s pushed into its
`LiveStream`, and a player joins the stream's `StreamPlayout`, which chunks each packet once for
all players and rebases timestamps to start near 0 per player. Bad network input is logged at
debug level and ends this session only.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import typing
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from media_engine.admission import PLAY, PUBLISH, AdmissionRequest, Decision, admit
from media_engine.control import ApplicationConfig, ControlPlane, HeldClaim, claim_publish
from media_engine.names import STREAM_NAME_RULE, InvalidStreamName, is_valid_stream_name
from media_engine.registry import LiveStream, StreamAlreadyLive, StreamKey, StreamRegistry
from media_engine.rtmp import amf0, flv
from media_engine.rtmp.batching import ReadBatching
from media_engine.rtmp.chunks import (
    ChunkReader,
    ChunkWriter,
    Message,
    MessageType,
    PeerBandwidthLimit,
    PendingBudget,
    RtmpLimits,
    TimestampUnwrapper,
    UserControlEvent,
    parse_u32,
    parse_user_control,
)
from media_engine.rtmp.handshake import C0C1_SIZE, C2_SIZE, RTMP_VERSION, ServerHandshake
from media_engine.rtmp.playout import CSID_STREAM, PlayoutEnd, PlayoutPlayer, StreamPlayout
from media_engine.rtmp.playout import play as start_playout

if typing.TYPE_CHECKING:
    from media_engine.relay.mirror import RemoteStreams

logger = logging.getLogger(__name__)

OUT_CHUNK_SIZE = 4096
WINDOW_ACK_SIZE = 2_500_000
PEER_BANDWIDTH = 2_500_000
# A player's socket buffer may hold this much before we wait for it (bounded by drain_timeout).
PLAYER_WRITE_HIGH_WATER = 1024 * 1024
# How long a peer that is being hung up on gets to read what is still buffered for it.
CLOSE_LINGER = 5.0

# Chunk stream ids of what we send (the values nginx-rtmp uses; media ones: see playout).
CSID_COMMAND = 3


_AUDIO = MessageType.AUDIO
_VIDEO = MessageType.VIDEO
_DATA = MessageType.DATA_AMF0
_COMMAND_AMF0 = MessageType.COMMAND_AMF0
_COMMAND_AMF3 = MessageType.COMMAND_AMF3


class State(enum.Enum):
    HANDSHAKE = "handshake"
    CONNECTING = "connecting"  # handshake done, waiting for the connect command
    CONNECTED = "connected"
    PUBLISHING = "publishing"
    PLAYING = "playing"
    CLOSED = "closed"


class SessionClosed(Exception):
    """Raised inside the session when it decides to hang up (refused connect, bad name...)."""


class RtmpSession(asyncio.Protocol):
    """Serve one accepted RTMP connection until either side ends it.

    Use as the protocol of a TCP server (`RtmpServer` does). ``close()`` drops the connection at
    once; ``wait_closed()`` returns when the session is over and cleaned up. ``clock`` is
    injectable for tests of the timeouts (it must tick like ``time.monotonic``).
    """

    def __init__(
        self,
        registry: StreamRegistry,
        control: ControlPlane,
        *,
        handshake_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        idle_timeout: float | None = 60.0,
        drain_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_closed: Callable[[RtmpSession], None] | None = None,
        limits: RtmpLimits | None = None,
        budget: PendingBudget | None = None,
        remote: RemoteStreams | None = None,
    ) -> None:
        """``limits`` bound what the peer may make us hold; ``budget`` is the node's, shared by its
        sessions; ``remote`` (the node's mirrors) plays streams that other nodes hold."""
        self.registry = registry
        self.control = control
        self.remote = remote
        self.handshake_timeout = handshake_timeout
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.drain_timeout = drain_timeout
        self._clock = clock
        self._on_closed = on_closed

        self.state = State.HANDSHAKE
        self.remote_address = ""
        self.application: ApplicationConfig | None = None
        self.tc_url = ""

        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._closed: asyncio.Future[None] | None = None
        self._closing = False
        self._started = 0.0
        self._deadline = 0.0
        self._last_activity = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._access_expiry: asyncio.TimerHandle | None = None  # a signed URL's or webhook's time limit

        self._handshake_buffer = bytearray()
        self._c0c1_done = False
        limits = limits or RtmpLimits()
        self._chunks_in = ChunkReader(
            limits.max_message_size,
            max_pending_bytes=limits.max_pending_bytes,
            budget=budget,
            on_evicted=self._on_evicted,
        )
        self._chunks_out = ChunkWriter()
        self._bytes_in = 0
        self._last_ack = 0
        self._peer_window = 0
        self._next_stream_id = 1
        self._command_task: asyncio.Task[None] | None = None

        self._demuxer = flv.FlvDemuxer()
        self.stream: LiveStream | None = None  # the stream this session publishes
        self._opened_stream: LiveStream | None = None  # published while handling the current read
        self._claimed: HeldClaim | None = None  # the key this session claimed (`_claim`) until it lets go
        self._publish_stream_id = 0
        self._batching: ReadBatching | None = None  # fewer, larger reads while publishing
        self._unwrap = TimestampUnwrapper()

        self.playing: LiveStream | None = None  # the stream this session plays
        self._playout: StreamPlayout | None = None
        self._player: PlayoutPlayer | None = None
        self._write_paused = False
        self._play_stream_id = 0

    # -- lifecycle -------------------------------------------------------------------------

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            logger.debug("rtmp %s: %s -> %s", self.remote_address, self.state.value, state.value)
            self.state = state

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Any stream transport (asyncio's or uvloop's, which does not subclass asyncio.Transport).
        self._transport = typing.cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()
        peer = transport.get_extra_info("peername")
        self.remote_address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer or "")
        self._demuxer.name = self.remote_address
        self._started = self._last_activity = self._clock()
        self._deadline = self._started + self.handshake_timeout
        self._timer = self._loop.call_later(self.handshake_timeout, self._check_timeouts)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            logger.debug("rtmp %s: connection lost: %r", self.remote_address, exc)
        self._closing = True
        for handle in (self._timer, self._linger, self._access_expiry):
            if handle is not None:
                handle.cancel()
        self._timer = self._linger = self._access_expiry = None
        self._chunks_in.close()  # frees its incomplete messages and its share of the node's budget
        self._stop_playing()
        self._unpublish()
        self._release_claim()
        if self._command_task is not None:
            self._command_task.cancel()
        self._set_state(State.CLOSED)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if self._on_closed is not None:
            self._on_closed(self)

    def close(self) -> None:
        """Drop the connection now (stop handler, timeouts, server shutdown)."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    async def wait_closed(self) -> None:
        """Return once the connection is gone and the session's tasks have ended."""
        if self._closed is not None:
            await asyncio.shield(self._closed)
        tasks = [t for t in (self._command_task,) if t is not None and not t.done()]
        if tasks:
            await asyncio.wait(tasks)

    def _hang_up(self) -> None:
        """Close after what is already written has been sent (or after CLOSE_LINGER at most)."""
        self._closing = True
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()
            assert self._loop is not None
            self._linger = self._loop.call_later(CLOSE_LINGER, transport.abort)

    def _on_evicted(self) -> None:
        """The node's budget for incomplete messages is over and this session held among the most."""
        logger.info("rtmp %s: dropped: the node holds too many bytes in incomplete messages", self.remote_address)
        self.close()

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, SessionClosed):
            logger.debug("rtmp %s: closing: %s", self.remote_address, exc)
            self._hang_up()
        elif isinstance(exc, (ValueError, ConnectionError, OSError)):
            logger.debug("rtmp %s: dropped on bad input: %r", self.remote_address, exc)
            self.close()
        else:
            logger.exception("rtmp %s: unexpected error", self.remote_address, exc_info=exc)
            self.close()

    def _check_timeouts(self) -> None:
        """Timer callback: end sessions stuck in the handshake, before connect, or idle."""
        self._timer = None
        if self._closing:
            return
        now = self._clock()
        if self.state in (State.HANDSHAKE, State.CONNECTING):
            expiry = self._deadline
        elif self.state is State.PLAYING or self.idle_timeout is None:
            expiry = now + (self.idle_timeout or 30.0)  # nothing to enforce: look again later
        else:
            expiry = self._last_activity + self.idle_timeout
        if now >= expiry:
            logger.debug("rtmp %s: timeout in state %s", self.remote_address, self.state.value)
            self.close()
            return
        assert self._loop is not None
        self._timer = self._loop.call_later(expiry - now, self._check_timeouts)

    # -- input -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._last_activity = self._clock()
        try:
            if self.state is State.HANDSHAKE:
                data = self._on_handshake_data(data)
                if not data:
                    return
            self._bytes_in += len(data)
            publishing = self.stream
            if self._process(self._chunks_in.feed(data), 0, len(data), publishing):
                self._after_read(len(data), publishing)
        except Exception as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        logger.debug("rtmp %s: peer closed", self.remote_address)
        return None  # let the transport close

    def _on_handshake_data(self, data: bytes) -> bytes:
        """Consume handshake bytes; what follows C2 is returned (b"" while the handshake goes on)."""
        buffer = self._handshake_buffer
        buffer += data
        if not self._c0c1_done:
            if buffer[0] != RTMP_VERSION:
                raise ValueError(f"not an RTMP handshake (first byte 0x{buffer[0]:02x})")
            if len(buffer) < C0C1_SIZE:
                return b""
            uptime = int((self._clock() - self._started) * 1000)
            self._send(ServerHandshake(uptime).respond(buffer[:C0C1_SIZE]))
            del buffer[:C0C1_SIZE]
            self._c0c1_done = True
        if len(buffer) < C2_SIZE:
            return b""
        rest = bytes(buffer[C2_SIZE:])  # C2 itself carries nothing we need to check
        self._handshake_buffer = bytearray()
        self._set_state(State.CONNECTING)
        self._deadline = self._clock() + self.connect_timeout
        return rest

    def _process(self, messages: list[Message], index: int, nbytes: int, publishing: LiveStream | None) -> bool:
        """Handle messages from ``index`` on; False if a command task took over the rest."""
        count = len(messages)
        while index < count:
            message = messages[index]
            index += 1
            type_id = message.type_id
            if type_id == _VIDEO or type_id == _AUDIO:
                if self.stream is not None and message.stream_id == self._publish_stream_id:
                    self._on_media(type_id, message.timestamp, message.payload)
            elif type_id == _COMMAND_AMF0 or type_id == _COMMAND_AMF3:
                # An AMF3 command message is a format byte (0) followed by AMF0 values.
                values = amf0.decode_all(message.payload if type_id == _COMMAND_AMF0 else message.payload[1:])
                if values and values[0] == "connect":
                    # Resolving the application waits for the control plane: stop reading meanwhile
                    # and let a task handle this command and the messages after it, in order.
                    assert self._transport is not None and self._loop is not None
                    self._transport.pause_reading()
                    self._command_task = self._loop.create_task(
                        self._connect_then_continue(values, messages, index, nbytes, publishing)
                    )
                    return False
                if (
                    values
                    and values[0] in ("publish", "play")
                    and (self._needs_admission(values) or self._needs_remote(values))
                ):
                    # The admission check may ask a webhook, a stream of another node is looked for
                    # and mirrored: same pause-and-continue as connect.
                    assert self._transport is not None and self._loop is not None
                    self._transport.pause_reading()
                    self._command_task = self._loop.create_task(
                        self._admit_then_continue(message.stream_id, values, messages, index, nbytes, publishing)
                    )
                    return False
                self._on_command(message.stream_id, values)
            else:
                self._on_message(message)
            if self._closing:
                return False
        return True

    async def _connect_then_continue(
        self, values: list[Any], messages: list[Message], index: int, nbytes: int, publishing: LiveStream | None
    ) -> None:
        try:
            await self._on_connect(values)
            self._continue_reading(messages, index, nbytes, publishing)
        except Exception as exc:
            self._fail(exc)

    async def _admit_then_continue(
        self,
        stream_id: int,
        values: list[Any],
        messages: list[Message],
        index: int,
        nbytes: int,
        publishing: LiveStream | None,
    ) -> None:
        try:
            if self._needs_admission(values):
                values = await self._admit(stream_id, values)
            if self._needs_remote(values):
                assert self.remote is not None
                key = self._stream_key(values[2:])
                assert key is not None
                await self.remote.ensure(key)  # a mirror in the registry now, or StreamNotFound below
                if self._closing:
                    return
            self._on_command(stream_id, values)
            self._continue_reading(messages, index, nbytes, publishing)
        except Exception as exc:
            self._fail(exc)

    def _continue_reading(
        self, messages: list[Message], index: int, nbytes: int, publishing: LiveStream | None
    ) -> None:
        """After an awaited check: handle the rest of the read's messages and read on (unless closing)."""
        if self._closing:
            return
        if self._process(messages, index, nbytes, publishing):
            self._after_read(nbytes, publishing)
            assert self._transport is not None
            self._transport.resume_reading()

    def _after_read(self, nbytes: int, publishing: LiveStream | None) -> None:
        # Credit the read to the stream published before, during or after it.
        stream = publishing or self._opened_stream or self.stream
        self._opened_stream = None
        if stream is not None:
            stream.counters.received(nbytes)
        if self._batching is not None:
            self._batching.observe(nbytes, self._last_activity)
        if self._peer_window and self._bytes_in - self._last_ack >= self._peer_window:
            self._last_ack = self._bytes_in
            self._send(self._chunks_out.acknowledgement(self._bytes_in))

    def _on_message(self, message: Message) -> None:
        """Every message but audio/video and commands."""
        type_id = message.type_id
        if type_id == _DATA:
            if self.stream is not None and message.stream_id == self._publish_stream_id:
                self._on_media(_DATA, message.timestamp, message.payload)
        elif type_id == MessageType.USER_CONTROL:
            self._on_user_control(message.payload)
        elif type_id == MessageType.WINDOW_ACK_SIZE:
            self._peer_window = parse_u32(message.payload)
        elif type_id == MessageType.AGGREGATE:
            if self.stream is not None and message.stream_id == self._publish_stream_id:
                for sub_type, timestamp, body in flv.split_aggregate(message.payload, message.timestamp):
                    if sub_type == _VIDEO or sub_type == _AUDIO or sub_type == _DATA:
                        self._on_media(sub_type, timestamp, body)
        elif type_id == MessageType.DATA_AMF3:
            if self.stream is not None and message.payload[:1] == b"\x00":
                self._on_media(_DATA, message.timestamp, message.payload[1:])
        # Set Chunk Size and Abort were applied by the reader; Acknowledgement and
        # Set Peer Bandwidth need no answer from a server; shared objects are not supported.

    def _on_media(self, type_id: int, timestamp: int, body: bytes) -> None:
        stream = self.stream
        assert stream is not None
        ts = self._unwrap(timestamp)
        if type_id == _VIDEO:
            packet = self._demuxer.video(body, ts)
        elif type_id == _AUDIO:
            packet = self._demuxer.audio(body, ts)
        else:
            packet = self._demuxer.data(body, ts)
            announced = flv.announced_tracks(packet) if packet is not None else None
            if announced is not None:
                stream.announce(video=announced[0], audio=announced[1])
        if packet is not None:
            stream.push(packet)

    def _on_user_control(self, payload: bytes) -> None:
        event, data = parse_user_control(payload)
        if event == UserControlEvent.PING_REQUEST:
            self._send(self._chunks_out.user_control(UserControlEvent.PING_RESPONSE, parse_u32(data)))

    # -- output ----------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        if self.playing is not None:
            self.playing.counters.sent(len(data))

    def pause_writing(self) -> None:
        # A player's media waits in its playout (for drain_timeout at most); nothing else is sent much.
        self._write_paused = True
        if self._player is not None:
            self._player.pause()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._player is not None:
            self._player.resume()

    def _send_command(self, csid: int, stream_id: int, *values: Any) -> None:
        self._send(self._chunks_out.write(csid, MessageType.COMMAND_AMF0, stream_id, 0, amf0.encode(*values)))

    def _send_status(self, stream_id: int, level: str, code: str, description: str) -> None:
        info = {"level": level, "code": code, "description": description}
        self._send_command(CSID_STREAM, stream_id, "onStatus", 0.0, None, info)

    def _send_result(self, txn: float, *values: Any) -> None:
        if txn:
            self._send_command(CSID_COMMAND, 0, "_result", txn, *values)

    # -- commands --------------------------------------------------------------------------

    def _on_command(self, stream_id: int, values: list[Any]) -> None:
        if not values or not isinstance(values[0], str):
            raise ValueError("command message without a name")
        name = values[0]
        txn = values[1] if len(values) > 1 and isinstance(values[1], float) else 0.0
        args = values[2:]
        if self.application is None:
            raise SessionClosed(f"{name!r} before connect")
        if name == "createStream":
            new_id = self._next_stream_id
            self._next_stream_id += 1
            self._send_result(txn, None, float(new_id))
        elif name == "publish":
            self._on_publish(stream_id, args)
        elif name == "play":
            self._on_play(stream_id, args)
        elif name in ("releaseStream", "FCPublish"):
            self._send_result(txn, None, amf0.UNDEFINED)
        elif name == "FCUnpublish":
            self._unpublish()
        elif name == "closeStream":
            if self.playing is not None and stream_id == self._play_stream_id:
                self._stop_playing()
            elif self.stream is not None and stream_id == self._publish_stream_id:
                self._unpublish()
        elif name == "deleteStream":
            deleted = int(args[1]) if len(args) > 1 and isinstance(args[1], float) else stream_id
            if self.stream is not None and deleted == self._publish_stream_id:
                self._unpublish()
            if self.playing is not None and deleted == self._play_stream_id:
                self._stop_playing()
        else:
            logger.debug("rtmp %s: ignoring command %r", self.remote_address, name)

    async def _on_connect(self, values: list[Any]) -> None:
        txn = values[1] if len(values) > 1 and isinstance(values[1], float) else 1.0
        if self.state is not State.CONNECTING:
            raise SessionClosed("second connect")
        command = values[2] if len(values) > 2 and isinstance(values[2], dict) else {}
        app = command.get("app")
        tc_url = command.get("tcUrl")
        app = app.split("?", 1)[0].strip("/") if isinstance(app, str) else ""
        self.tc_url = tc_url if isinstance(tc_url, str) else ""
        host = ""
        if self.tc_url:
            try:
                host = urlsplit(self.tc_url).hostname or ""
            except ValueError:
                host = ""
        if not host and self._transport is not None:
            sockname = self._transport.get_extra_info("sockname")
            host = sockname[0] if isinstance(sockname, tuple) else ""
        config = None
        if app:
            try:
                config = await self.control.resolve_application(host, app)
            except Exception:
                logger.exception("rtmp %s: resolving application %r of %r failed", self.remote_address, app, host)
        if config is None:
            logger.info("rtmp %s: connect to unknown application %r (host %r) refused", self.remote_address, app, host)
            info = {
                "level": "error",
                "code": "NetConnection.Connect.Rejected",
                "description": f"Application {app!r} not found.",
            }
            self._send_command(CSID_COMMAND, 0, "_error", txn, None, info)
            raise SessionClosed("connect rejected")
        self.application = config
        self._set_state(State.CONNECTED)
        out = self._chunks_out
        self._send(
            out.window_ack_size(WINDOW_ACK_SIZE)
            + out.set_peer_bandwidth(PEER_BANDWIDTH, PeerBandwidthLimit.DYNAMIC)
            + out.set_chunk_size(OUT_CHUNK_SIZE)
        )
        self._send_result(
            txn or 1.0,
            {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0, "mode": 1.0},
            {
                "level": "status",
                "code": "NetConnection.Connect.Success",
                "description": "Connection succeeded.",
                "objectEncoding": 0.0,
            },
        )

    # -- access control --------------------------------------------------------------------

    def _needs_admission(self, values: list[Any]) -> bool:
        key = self._stream_key(values[2:])
        if key is None or self.application is None:
            return False  # the command handler refuses it as it is
        direction = PUBLISH if values[0] == "publish" else PLAY
        if direction == PUBLISH and getattr(self.control, "claim_publish", None) is not None:
            return True  # the key is claimed across nodes in `_admit`
        return self.application.access.checks(direction, "rtmp", key.name)

    def _needs_remote(self, values: list[Any]) -> bool:
        """Whether a play command names a stream that is not here but may be on another node."""
        if self.remote is None or values[0] != "play" or self.stream is not None or self.playing is not None:
            return False
        name = values[3] if len(values) > 3 and isinstance(values[3], str) else ""
        name = name.split("?", 1)[0].strip()
        if not name or self.application is None or not is_valid_stream_name(name):
            return False
        return self.registry.get(StreamKey(self.application.vhost, self.application.app, name)) is None

    def _request_url(self, raw_name: str) -> str:
        """The URL the client asked for: ``tcUrl/stream?query``, as a signed URL signs it."""
        base = self.tc_url.split("?", 1)[0].rstrip("/")
        if not base and self.application is not None:
            base = f"rtmp://localhost/{self.application.app}"
        return f"{base}/{raw_name.strip()}"

    async def _admit(self, stream_id: int, values: list[Any]) -> list[Any]:
        """Ask the admission point about a publish or play command; the command to carry out
        (its stream name rewritten if the webhook said so). Raises SessionClosed if refused."""
        assert self.application is not None and self._transport is not None
        publish = values[0] == "publish"
        args = values[2:]
        raw_name = args[1]
        key = self._stream_key(args)
        assert key is not None
        if publish and not self.application.access.checks(PUBLISH, "rtmp", key.name):
            await self._claim(stream_id, key)
            return values
        peer = self._transport.get_extra_info("peername")
        address, port = (peer[0], int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else ("", 0)
        request = AdmissionRequest(
            PUBLISH if publish else PLAY,
            "rtmp",
            self._request_url(raw_name),
            address,
            port,
            key.name,
            vhost=key.vhost,
            app=key.app,
        )
        try:
            decision = await admit(self.application.access, request)
        except Exception:
            logger.exception("rtmp %s: admission check failed", self.remote_address)
            decision = Decision(False, "the admission check failed")
        target = decision.new_target if decision.allowed else None
        if target is not None and target[0] != self.application.app:
            config = await self.control.application_config(self.application.vhost, target[0])
            if config is None:
                decision = Decision(False, "the admission webhook named an unknown application")
            else:
                self.application = config
        if not decision.allowed:
            logger.info(
                "rtmp %s: %s of %s refused: %s", self.remote_address, values[0], key, decision.reason or "denied"
            )
            code = "NetStream.Publish.Rejected" if publish else "NetStream.Play.Failed"
            self._send_status(stream_id, "error", code, f"Access denied: {decision.reason or 'not allowed'}.")
            raise SessionClosed("access denied")
        if decision.expires_at is not None:
            assert self._loop is not None
            delay = max(0.0, decision.expires_at - time.time())
            self._access_expiry = self._loop.call_later(delay, self._on_access_expired)
        if target is not None:
            values = [*values[:3], target[1], *args[2:]]
        if publish:
            final = self._stream_key(values[2:])
            if final is not None:  # (a name the webhook gave that breaks the rule: `_on_publish` refuses it)
                await self._claim(stream_id, final)
        return values

    async def _claim(self, stream_id: int, key: StreamKey) -> None:
        """Claim ``key`` across the nodes (and worker processes) of the control plane, so that of two
        publishes of one key at the same moment on two of them only one passes: raise SessionClosed,
        answering as to any publish of a live key, if another node holds or is taking it."""
        self._release_claim()  # (a second publish on this connection)
        claim = await claim_publish(self.control, key, f"rtmp {self.remote_address}")
        if claim is None:
            self._send_status(stream_id, "error", "NetStream.Publish.BadName", f"{key.name} is already publishing.")
            raise SessionClosed("stream already live")
        self._claimed = claim
        if self._closing:  # the connection went while the claim was asked
            self._release_claim()

    def _release_claim(self) -> None:
        if self._claimed is not None:
            claim, self._claimed = self._claimed, None
            claim.release()

    def _on_access_expired(self) -> None:
        self._access_expiry = None
        logger.info("rtmp %s: access time is over, disconnecting", self.remote_address)
        self.close()

    def _stream_key(self, args: list[Any]) -> StreamKey | None:
        """The stream a publish/play command names; None if it names none, or one the rule refuses."""
        name = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
        name = name.split("?", 1)[0].strip()
        if not name or self.application is None:
            return None
        if not is_valid_stream_name(name):
            logger.info("rtmp %s: stream name %r refused: %s", self.remote_address, name[:100], STREAM_NAME_RULE)
            return None
        return StreamKey(self.application.vhost, self.application.app, name)

    def _on_publish(self, stream_id: int, args: list[Any]) -> None:
        key = self._stream_key(args)
        if self.stream is not None or self.playing is not None or key is None:
            self._send_status(stream_id, "error", "NetStream.Publish.BadName", "Bad stream name.")
            raise SessionClosed("bad publish")
        try:
            stream = self.registry.open(key, "rtmp", self.remote_address)
        except InvalidStreamName:  # a name an admission webhook gave
            self._send_status(stream_id, "error", "NetStream.Publish.BadName", "Bad stream name.")
            raise SessionClosed("bad publish") from None
        except StreamAlreadyLive:
            logger.info("rtmp %s: %s is already being published", self.remote_address, key)
            self._send_status(stream_id, "error", "NetStream.Publish.BadName", f"{key.name} is already publishing.")
            raise SessionClosed("stream already live") from None
        self.stream = self._opened_stream = stream
        self._publish_stream_id = stream_id
        self._unwrap.reset()
        stream.set_stop_handler(self._on_stopped_by_api)
        self._set_state(State.PUBLISHING)
        if self._transport is not None and self._loop is not None:
            self._batching = ReadBatching.for_transport(self._transport, self._loop, self._clock)
        logger.info("rtmp %s: publishing %s", self.remote_address, key)
        self._send(self._chunks_out.user_control(UserControlEvent.STREAM_BEGIN, stream_id))
        self._send_status(stream_id, "status", "NetStream.Publish.Start", f"{key.name} is now published.")

    def _on_stopped_by_api(self) -> None:
        logger.info("rtmp %s: publisher disconnected on request", self.remote_address)
        self.close()

    def _unpublish(self) -> None:
        stream = self.stream
        if stream is None:
            return
        self.stream = None
        if self._batching is not None:
            self._batching.close()
            self._batching = None
        self.registry.close(stream)
        self._release_claim()
        if self.state is State.PUBLISHING:
            self._set_state(State.CONNECTED)

    def _on_play(self, stream_id: int, args: list[Any]) -> None:
        key = self._stream_key(args)
        stream = self.registry.get(key) if key is not None else None
        if stream is None or self.stream is not None or self.playing is not None:
            logger.info("rtmp %s: play of unknown stream %s", self.remote_address, key)
            self._send_status(stream_id, "error", "NetStream.Play.StreamNotFound", "No such stream.")
            raise SessionClosed("stream not found")
        name = stream.key.name
        self.playing = stream
        self._play_stream_id = stream_id
        stream.counters.connection_opened("rtmp")
        self._set_state(State.PLAYING)
        logger.info("rtmp %s: playing %s", self.remote_address, stream.key)
        assert self._transport is not None and self._loop is not None
        self._transport.set_write_buffer_limits(high=PLAYER_WRITE_HIGH_WATER)
        out = self._chunks_out
        self._send(out.user_control(UserControlEvent.STREAM_BEGIN, stream_id))
        self._send_status(stream_id, "status", "NetStream.Play.Reset", f"Playing and resetting {name}.")
        self._send_status(stream_id, "status", "NetStream.Play.Start", f"Started playing {name}.")
        self._send(out.write(CSID_STREAM, _DATA, stream_id, 0, amf0.encode("|RtmpSampleAccess", True, True)))
        self._start_playout(stream, stream_id)

    def _stop_playing(self) -> None:
        """Leave the played stream (closeStream/deleteStream, or the end of the session)."""
        stream = self.playing
        if stream is None:
            return
        if self._playout is not None and self._player is not None:
            self._playout.leave(self._player)
        stream.counters.connection_closed("rtmp")
        self.playing = None
        self._playout = self._player = None
        if self.state is State.PLAYING:
            self._set_state(State.CONNECTED)

    # -- playing ---------------------------------------------------------------------------

    def _start_playout(self, stream: LiveStream, stream_id: int) -> None:
        """Join the stream's playout: its packets, chunked once for all players, go to this socket."""
        assert self._transport is not None
        self._player = PlayoutPlayer(
            self._transport, self._chunks_out, stream_id, self._on_playout_end, self.drain_timeout, stream.counters.sent
        )
        if self._write_paused:  # (full already: the playout holds what comes until it drains)
            self._player.pause()
        self._playout = start_playout(stream, self._player)

    def _on_playout_end(self, reason: str) -> None:
        """The playout stopped sending to this player: the stream ended, or the player is too slow."""
        stream_id = self._play_stream_id
        if reason == PlayoutEnd.TOO_SLOW:
            logger.info("rtmp %s: player too slow, disconnecting", self.remote_address)
            self.close()
        elif reason == PlayoutEnd.NOT_READING:
            logger.info("rtmp %s: player not reading, disconnecting", self.remote_address)
            self.close()
        else:
            # The publisher is gone: tell the player, then hang up once it has the data.
            out = self._chunks_out
            self._send(out.user_control(UserControlEvent.STREAM_EOF, stream_id))
            self._send_status(stream_id, "status", "NetStream.Play.UnpublishNotify", "Stream unpublished.")
            self._send_status(stream_id, "status", "NetStream.Play.Stop", "Stopped playing.")
            self._hang_up()
