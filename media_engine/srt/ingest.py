"""SRT ingest: MPEG-TS publishers on ``srt://host:port?streamid=...`` become live streams.

One SRT listener (libsrt, `media_engine.srt.libsrt`) takes every publisher; the caller's streamid
names the stream as OME does: ``vhost/app/stream``, or a URL-encoded ``srt://host[:port]/app/stream``
(the virtual host then comes from the host name), each optionally with a query (``?policy=...``
for a signed URL, checked against the streamid as sent). Each admitted connection gets a
supervised Debian ``ffmpeg`` that remuxes its MPEG-TS to FLV on a pipe, without re-encoding; the
FLV tags become `MediaPacket`s of the stream, as from an RTMP publisher. The stream ends when the
caller disconnects, ffmpeg stops, the API deletes the stream or the admission's time is over. Before
the stream opens, its key is claimed across nodes (`claim_publish`) as for any publish, and released
when it ends; a caller refused (as for a key live here) is disconnected.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from media_engine.admission import PUBLISH, AdmissionRequest, Decision, admit
from media_engine.control import ApplicationConfig, ControlPlane, HeldClaim, claim_or_refuse
from media_engine.names import InvalidStreamName, check_stream_name
from media_engine.packets import MediaPacket, TrackKind
from media_engine.registry import LiveStream, StreamAlreadyLive, StreamKey, StreamRegistry
from media_engine.rtmp import flv
from media_engine.srt.libsrt import LibSrt, SrtError, SrtTimeout

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9999  # OME's SRT port
RECEIVE_TIMEOUT_MS = 500  # how often a receiving thread looks whether it should stop
CONTROL_TIMEOUT = 30.0  # seconds a connection waits for the application lookup and admission
FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
REMUX_COMMAND = [
    FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error",
    "-probesize", "1000000", "-analyzeduration", "1500000",
    "-f", "mpegts", "-i", "pipe:0",
    "-map", "0:v:0?", "-map", "0:a:0?", "-c", "copy",
    "-flvflags", "no_duration_filesize", "-f", "flv", "pipe:1",
]  # fmt: skip
_TAG_HEADER = struct.Struct(">B3s3sB3s")
FLV_AUDIO, FLV_VIDEO, FLV_SCRIPT = 8, 9, 18


@dataclass(frozen=True)
class StreamId:
    """What an SRT caller's streamid names."""

    vhost: str  # empty: find it from ``host``
    host: str
    app: str
    stream: str
    raw: str  # as sent, URL-decoded: what a signed streamid signs


def parse_streamid(value: str) -> StreamId:
    """``vhost/app/stream[?query]`` or ``srt://host[:port]/app/stream[?query]`` (URL-encoded or not)."""
    raw = unquote(value.strip())
    if raw.lower().startswith("srt://"):
        parts = urlsplit(raw)
        names = [part for part in parts.path.split("/") if part]
        if len(names) != 2:
            raise ValueError("an srt:// streamid names /app/stream")
        return StreamId("", parts.hostname or "", names[0], check_stream_name(names[1]), raw)
    path = raw.split("?", 1)[0]
    names = [part for part in path.split("/") if part]
    if len(names) != 3:
        raise ValueError("a streamid is vhost/app/stream")
    return StreamId(names[0], "", names[1], check_stream_name(names[2]), raw)


class FlvTagReader:
    """Incremental FLV parser: bytes in, (tag type, timestamp ms, body) out."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._header_done = False

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        buffer = self._buffer
        buffer += data
        tags: list[tuple[int, int, bytes]] = []
        if not self._header_done:
            if len(buffer) < 9:
                return tags
            if buffer[:3] != b"FLV":
                raise ValueError("not FLV")
            skip = int.from_bytes(buffer[5:9], "big") + 4  # the header and PreviousTagSize0
            if len(buffer) < skip:
                return tags
            del buffer[:skip]
            self._header_done = True
        pos = 0
        while len(buffer) - pos >= 11:
            tag_type, size, ts, ts_ext, _ = _TAG_HEADER.unpack_from(buffer, pos)
            size = int.from_bytes(size, "big")
            end = pos + 11 + size + 4
            if len(buffer) < end:
                break
            timestamp = int.from_bytes(ts, "big") | (ts_ext << 24)
            tags.append((tag_type & 0x1F, timestamp, bytes(buffer[pos + 11 : pos + 11 + size])))
            pos = end
        del buffer[:pos]
        return tags


class SrtIngestServer:
    """Listen for SRT publishers on ``host:port`` (port 0: any free port, read ``.port`` after start)."""

    def __init__(
        self, registry: StreamRegistry, control: ControlPlane, host: str = "0.0.0.0", port: int = DEFAULT_PORT
    ) -> None:
        self.registry = registry
        self.control = control
        self.host = host
        self.port = port
        self._lib: LibSrt | None = None
        self._listener: int | None = None
        self._udp: socket.socket | None = None  # bound, until the first caller hands it to libsrt
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting: threading.Thread | None = None
        self._connections: set[SrtConnection] = set()
        self._lock = threading.Lock()
        self._stopping = False

    async def start(self) -> None:
        """Bind the port. libsrt's listener (and its receiving thread, which wakes every few ms
        whether or not anyone calls) starts only when the first datagram arrives: until then the
        engine's loop watches a plain UDP socket, which costs nothing while nobody publishes."""
        self._loop = asyncio.get_running_loop()
        self._lib = LibSrt.get()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind((self.host, self.port))
        except OSError as error:
            udp.close()
            raise SrtError(error.errno, f"cannot bind {self.host}:{self.port}: {error.strerror}") from error
        self.port = udp.getsockname()[1]
        self._udp = udp
        self._loop.add_reader(udp.fileno(), self._first_datagram)
        logger.info("SRT listening on %s:%s", self.host, self.port)

    def _first_datagram(self) -> None:
        """A caller's first handshake is queued on the UDP socket: hand the socket to libsrt (which
        reads that datagram) and accept from now on."""
        assert self._loop is not None and self._lib is not None and self._udp is not None
        udp, self._udp = self._udp, None
        self._loop.remove_reader(udp.fileno())
        if self._stopping:
            udp.close()
            return
        fd = udp.detach()  # libsrt owns it now
        try:
            self._listener = self._lib.listen_acquired(fd)
        except SrtError as error:
            os.close(fd)
            logger.error("SRT listener on port %s failed: %s", self.port, error)
            return
        self._accepting = threading.Thread(target=self._accept_loop, name=f"srt accept {self.port}", daemon=True)
        self._accepting.start()
        logger.debug("SRT listener on port %s started by the first caller", self.port)

    async def stop(self) -> None:
        self._stopping = True
        if self._udp is not None:
            assert self._loop is not None
            self._loop.remove_reader(self._udp.fileno())
            self._udp.close()
            self._udp = None
        if self._lib is not None and self._listener is not None:
            self._lib.close(self._listener)
            self._listener = None
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()
        threads = [connection.thread for connection in connections if connection.thread is not None]
        if self._accepting is not None:
            threads.append(self._accepting)
        await asyncio.to_thread(lambda: [thread.join(5) for thread in threads])

    @property
    def connections(self) -> list[SrtConnection]:
        with self._lock:
            return list(self._connections)

    def _accept_loop(self) -> None:
        assert self._lib is not None and self._listener is not None
        listener = self._listener
        while not self._stopping:
            try:
                sock, host, port = self._lib.accept(listener)
            except SrtError as error:
                if not self._stopping:
                    logger.error("SRT listener on port %s failed: %s", self.port, error)
                return
            connection = SrtConnection(self, sock, host, port)
            with self._lock:
                self._connections.add(connection)
            connection.thread = threading.Thread(target=connection.serve, name=f"srt {host}:{port}", daemon=True)
            connection.thread.start()

    def _forget(self, connection: SrtConnection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _on_loop(self, coroutine, timeout: float = CONTROL_TIMEOUT):
        """Run a coroutine on the engine's loop from a connection thread, and wait for its result."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # (a claim asked meanwhile is released: `PublishClaims.claim`)
            raise


class SrtConnection:
    """One SRT publisher: admission, then SRT -> ffmpeg (TS to FLV) -> the live stream."""

    def __init__(self, server: SrtIngestServer, sock: int, host: str, port: int) -> None:
        self.server = server
        self.lib = server._lib
        self.sock = sock
        self.remote_address = f"{host}:{port}"
        self.client_host = host
        self.client_port = port
        self.thread: threading.Thread | None = None
        self.stream: LiveStream | None = None
        self.claim: HeldClaim | None = None  # the key's publish claim while the stream is open
        self.expires_at: float | None = None
        self._closed = threading.Event()
        self._process: subprocess.Popen | None = None

    def close(self) -> None:
        """End this publisher (from any thread): its receiving loop stops within RECEIVE_TIMEOUT_MS."""
        self._closed.set()

    def serve(self) -> None:
        assert self.lib is not None
        try:
            opened = self._open()
            if opened is not None:
                self._relay(*opened)
        except Exception:
            logger.exception("srt %s: unexpected error", self.remote_address)
        finally:
            self.lib.close(self.sock)
            self._end()
            self.server._forget(self)

    # -- admission ---------------------------------------------------------------------------

    def _open(self) -> tuple[LiveStream, subprocess.Popen] | None:
        assert self.lib is not None
        try:
            streamid = parse_streamid(self.lib.streamid(self.sock))
        except (ValueError, SrtError) as error:
            logger.info("srt %s: refused: %s", self.remote_address, error)
            return None
        try:
            config, decision = self.server._on_loop(self._admit(streamid))
        except (concurrent.futures.TimeoutError, RuntimeError) as error:
            logger.warning("srt %s: no admission decision: %r", self.remote_address, error)
            return None
        if config is None or not decision.allowed:
            reason = "unknown application" if config is None else decision.reason
            logger.info(
                "srt %s: publish of %s/%s refused: %s", self.remote_address, streamid.app, streamid.stream, reason
            )
            return None
        name = streamid.stream
        target = decision.new_target
        if target is not None:
            if target[0] != config.app:
                logger.info("srt %s: the webhook's new application is not supported for SRT", self.remote_address)
                return None
            name = target[1]
        self.expires_at = decision.expires_at
        key = StreamKey(config.vhost, config.app, name)
        try:
            stream = self.server._on_loop(self._open_stream(key))
        except (concurrent.futures.TimeoutError, RuntimeError) as error:
            logger.warning("srt %s: %s not opened in time: %r", self.remote_address, key, error)
            return None
        except StreamAlreadyLive:
            logger.info("srt %s: %s is already being published", self.remote_address, key)
            return None
        except InvalidStreamName as error:  # a name an admission webhook gave
            logger.info("srt %s: refused: %s", self.remote_address, error)
            return None
        self.stream = stream
        try:
            process = subprocess.Popen(
                REMUX_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
            )
        except OSError as error:
            logger.error("srt %s: cannot start ffmpeg: %s", self.remote_address, error)
            return None
        self._process = process
        logger.info("srt %s: publishing %s", self.remote_address, key)
        return stream, process

    async def _admit(self, streamid: StreamId) -> tuple[ApplicationConfig | None, Decision]:
        if streamid.vhost:
            config = await self.server.control.application_config(streamid.vhost, streamid.app)
        else:
            config = await self.server.control.resolve_application(streamid.host, streamid.app)
        if config is None:
            return None, Decision(False, "unknown application")
        rules = config.access
        if not rules.checks(PUBLISH, "srt", streamid.stream):
            return config, Decision(True)
        request = AdmissionRequest(
            PUBLISH, "srt", streamid.raw, self.client_host, self.client_port, streamid.stream, "srt"
        )
        try:
            return config, await admit(rules, request)
        except Exception:
            logger.exception("srt %s: admission check failed", self.remote_address)
            return config, Decision(False, "the admission check failed")

    async def _open_stream(self, key: StreamKey) -> LiveStream:
        """Claim ``key`` across nodes, then open it here (StreamAlreadyLive if either refuses)."""
        check_stream_name(key.name)  # (a name an admission webhook gave: refused before any claim)
        claim = await claim_or_refuse(self.server.control, key, f"srt {self.remote_address}")
        with claim.released_on_failure():
            stream = self.server.registry.open(key, "srt", self.remote_address)
        stream.set_stop_handler(self.close)
        self.stream, self.claim = stream, claim  # (here: `_end` closes them even if the caller gave up waiting)
        return stream

    # -- media ---------------------------------------------------------------------------------

    def _relay(self, stream: LiveStream, process: subprocess.Popen) -> None:
        """Feed the caller's MPEG-TS to ffmpeg while a second thread turns its FLV into packets."""
        assert self.lib is not None and process.stdin is not None
        self.lib.set_receive_timeout(self.sock, RECEIVE_TIMEOUT_MS)
        reader = threading.Thread(target=self._read_flv, args=(stream, process), name="srt flv", daemon=True)
        reader.start()
        loop = self.server._loop
        assert loop is not None
        try:
            while not self._closed.is_set() and process.poll() is None:
                if self.expires_at is not None and time.time() >= self.expires_at:
                    logger.info("srt %s: access time is over, disconnecting", self.remote_address)
                    break
                try:
                    data = self.lib.receive(self.sock)
                except SrtTimeout:
                    continue
                except SrtError as error:
                    logger.info("srt %s: publisher gone (%s)", self.remote_address, error.strerror)
                    break
                loop.call_soon_threadsafe(stream.counters.received, len(data))
                process.stdin.write(data)
        except (BrokenPipeError, ValueError, OSError) as error:
            logger.info("srt %s: ffmpeg stopped taking data (%r)", self.remote_address, error)
        finally:
            try:
                process.stdin.close()
            except OSError:
                pass
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            reader.join(10)
            if process.returncode not in (0, None) and process.stderr is not None:
                errors = process.stderr.read().decode(errors="replace").strip()
                if errors:
                    logger.info("srt %s: ffmpeg: %s", self.remote_address, errors[-500:])

    def _read_flv(self, stream: LiveStream, process: subprocess.Popen) -> None:
        assert process.stdout is not None and self.server._loop is not None
        loop = self.server._loop
        parser = FlvTagReader()
        demuxer = flv.FlvDemuxer(f"srt {self.remote_address}")
        while True:
            data = process.stdout.read(65536)
            if not data:
                return
            packets: list[MediaPacket] = []
            try:
                for tag_type, timestamp, body in parser.feed(data):
                    if tag_type == FLV_VIDEO:
                        packet = demuxer.video(body, timestamp)
                    elif tag_type == FLV_AUDIO:
                        packet = demuxer.audio(body, timestamp)
                    elif tag_type == FLV_SCRIPT:
                        packet = demuxer.data(body, timestamp)
                    else:
                        continue
                    # ffmpeg's FLV header carries an empty AAC record until the ADTS bitstream filter ran.
                    if packet is not None and (packet.payload or not packet.config):
                        packets.append(packet)
            except ValueError as error:
                logger.info("srt %s: bad remuxed data: %s", self.remote_address, error)
                self.close()
                return
            if packets:
                loop.call_soon_threadsafe(_push_all, stream, packets)

    def _end(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        stream, claim = self.stream, self.claim
        loop = self.server._loop
        if stream is not None and loop is not None and not loop.is_closed():
            self.stream = self.claim = None
            loop.call_soon_threadsafe(_close, self.server.registry, stream, claim)


def _close(registry: StreamRegistry, stream: LiveStream, claim: HeldClaim | None) -> None:
    try:
        registry.close(stream)
    finally:
        if claim is not None:
            claim.release()  # after the stream is closed here: a new publish may take the key


def _push_all(stream: LiveStream, packets: list[MediaPacket]) -> None:
    if stream.ended:
        return
    for packet in packets:
        if packet.kind is TrackKind.DATA:
            announced = flv.announced_tracks(packet)
            if announced is not None:  # ffmpeg's onMetaData names the tracks of the caller's MPEG-TS
                stream.announce(video=announced[0], audio=announced[1])
        stream.push(packet)
