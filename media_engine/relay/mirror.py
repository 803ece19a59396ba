"""Remote streams ("mirrors"): play here a stream that another node holds, with one pull for all viewers.

`RemoteStreams.ensure(key)` gives the local `LiveStream` of a key: the one published here, or a
*mirror*: a stream of the local registry (``origin`` = the holding node's id) fed by one RTMP play
(`media_engine.rtmp.client.RtmpPlayer`) from the node that `locate` names. Concurrent and later
callers share the mirror. It ends ``linger`` seconds after its last reader leaves (RTMP players,
WHEP fan-outs, HLS/LL-HLS packagers: `LiveStream.reader_count`), and at once when the origin ends
the stream or the connection. Registry listeners that did not ask for mirrors (the control plane)
never hear of them, and a publish of the key here is refused while the mirror exists. A stream
published here while `locate` looks (an edge's CDN rendition, whose transcode the edge's `locate`
started with this node as its output) is given instead of a mirror.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from media_engine.internal_auth import redact_url
from media_engine.packets import MediaPacket
from media_engine.registry import LiveStream, StreamAlreadyLive, StreamKey, StreamRegistry
from media_engine.rtmp import flv
from media_engine.rtmp.client import PlayError, RtmpPlayer

logger = logging.getLogger(__name__)

# How often a mirror looks whether it still has readers (at most; a short linger looks more often).
IDLE_CHECK_INTERVAL = 1.0


@dataclass(frozen=True)
class RemoteSource:
    """Where a stream this node does not hold can be played."""

    url: str  # rtmp://host:port/app/stream?<internal job token>: a credential, log it via redact_url
    origin: str  # node id of the node holding the stream (routes, logs)
    http_base: str | None = None  # http://host:port of that node's media HTTP (for proxying HLS)


Locate = Callable[[StreamKey], Awaitable[RemoteSource | None]]  # None: no node of the cluster has it


class MirrorState:
    CONNECTING = "connecting"
    PLAYING = "playing"
    ENDED = "ended"


@dataclass(frozen=True)
class MirrorInfo:
    key: StreamKey
    origin: str
    started_at: float  # wall clock (time.time())
    subscribers: int  # local readers (an RTMP playout, a packager, a WHEP fan-out): one each, whatever the audience
    viewers: int  # local viewers: RTMP players, WHEP sessions and HLS/LL-HLS viewers (the stream's connections)
    bytes_in: int
    state: str


class _Mirror:
    """One pull of a remote stream into the local registry."""

    def __init__(self, key: StreamKey, source: RemoteSource, connect_timeout: float) -> None:
        self.key = key
        self.source = source
        self.started_at = time.time()
        self.state = MirrorState.CONNECTING
        self.stream: LiveStream | None = None
        self.player = RtmpPlayer(source.url, self._on_packet, connect_timeout=connect_timeout)
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self._counted = 0

    def _on_packet(self, packet: MediaPacket) -> None:
        stream = self.stream
        if stream is None or stream.ended:
            return
        received = self.player.bytes_in
        stream.counters.received(received - self._counted)
        self._counted = received
        if packet.config and packet.codec == "amf0":
            announced = flv.announced_tracks(packet)
            if announced is not None:
                stream.announce(video=announced[0], audio=announced[1])
        stream.push(packet)
        if stream.ready and not self.ready.is_set():
            self.ready.set()

    def stop(self) -> None:
        self.player.close()


class RemoteStreams:
    """The mirrors of one node (see the module docstring)."""

    def __init__(
        self, registry: StreamRegistry, locate: Locate, *, linger: float = 10.0, connect_timeout: float = 5.0
    ) -> None:
        self.registry = registry
        self.locate = locate
        self.linger = linger
        self.connect_timeout = connect_timeout
        self._mirrors: dict[StreamKey, _Mirror] = {}
        self._starting: dict[StreamKey, asyncio.Future[LiveStream | None]] = {}
        self._closed = False

    async def ensure(self, key: StreamKey) -> LiveStream | None:
        """The local stream of ``key`` (published here, or a mirror started or shared now); None when
        no node has it or its holder cannot be played."""
        stream = self.registry.get(key)
        if stream is not None:
            mirror = self._mirrors.get(key)
            if mirror is not None and mirror.stream is stream and not stream.ready:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.connect_timeout):
                        await mirror.ready.wait()
                return stream if stream.ready and not stream.ended else None
            return stream
        if self._closed:
            return None
        starting = self._starting.get(key)
        if starting is None:
            starting = asyncio.ensure_future(self._start(key))
            self._starting[key] = starting
            starting.add_done_callback(lambda _: self._starting.pop(key, None))
        return await asyncio.shield(starting)

    async def _start(self, key: StreamKey) -> LiveStream | None:
        try:
            async with asyncio.timeout(self.connect_timeout):
                source = await self.locate(key)
        except TimeoutError:
            logger.warning("mirror %s: locating the stream took more than %.1f s", key, self.connect_timeout)
            return self.registry.get(key)
        except Exception:
            logger.exception("mirror %s: locating the stream failed", key)
            return None
        if source is None or self._closed:
            published = self.registry.get(key)
            if published is not None and not self._closed:
                return published  # published here meanwhile (an edge's CDN rendition that `locate` started)
            logger.info("mirror %s: no node holds the stream", key)
            return None
        try:
            mirror = _Mirror(key, source, self.connect_timeout)
            await mirror.player.start()
        except (PlayError, OSError, TimeoutError, ValueError) as error:
            logger.info("mirror %s: cannot play it from node %s (%s): %s", key, source.origin,
                        redact_url(source.url), error)  # fmt: skip
            return None
        try:
            stream = self.registry.open(key, "rtmp", urlsplit(source.url).hostname or "", origin=source.origin)
        except StreamAlreadyLive:
            mirror.stop()  # published here meanwhile
            return self.registry.get(key)
        mirror.stream = stream
        stream.set_stop_handler(mirror.stop)
        self._mirrors[key] = mirror
        mirror.task = asyncio.get_running_loop().create_task(self._run(mirror))
        logger.info("mirror %s: playing from node %s (%s)", key, source.origin, redact_url(source.url))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.connect_timeout):
                await mirror.ready.wait()
        if not stream.ready:
            logger.info("mirror %s: the tracks did not come from node %s in time", key, source.origin)
            mirror.stop()
            return None
        mirror.state = MirrorState.PLAYING
        return stream

    async def _run(self, mirror: _Mirror) -> None:
        """Relay until the origin ends the stream or nobody reads it for ``linger`` seconds."""
        stream = mirror.stream
        assert stream is not None
        reading = asyncio.ensure_future(mirror.player.run())
        interval = max(0.05, min(IDLE_CHECK_INTERVAL, self.linger / 4))
        idle_since: float | None = None
        loop = asyncio.get_running_loop()
        try:
            while not reading.done():
                await asyncio.wait([reading], timeout=interval)
                if reading.done() or not stream.ready:
                    continue
                if stream.reader_count:
                    idle_since = None
                elif idle_since is None:
                    idle_since = loop.time()
                elif loop.time() - idle_since >= self.linger:
                    logger.info("mirror %s: no reader for %.1f s, leaving node %s", mirror.key, self.linger,
                                mirror.source.origin)  # fmt: skip
                    # Out of the registry now: a viewer arriving while the pull closes starts a new one.
                    self._forget(mirror)
                    mirror.stop()
            await reading
        except asyncio.CancelledError:
            mirror.stop()
            reading.cancel()
            raise
        except Exception:
            logger.exception("mirror %s: relaying from node %s failed", mirror.key, mirror.source.origin)
            mirror.stop()
        finally:
            self._forget(mirror)
            logger.info("mirror %s of node %s ended (%s)", mirror.key, mirror.source.origin, mirror.player.ended_by)

    def _forget(self, mirror: _Mirror) -> None:
        """The mirror is over for its viewers: out of the registry (they get the end) and of our list."""
        mirror.state = MirrorState.ENDED
        mirror.ready.set()
        if self._mirrors.get(mirror.key) is mirror:
            del self._mirrors[mirror.key]
        if mirror.stream is not None:
            self.registry.close(mirror.stream)

    def mirrors(self) -> list[MirrorInfo]:
        return [
            MirrorInfo(
                key=mirror.key,
                origin=mirror.source.origin,
                started_at=mirror.started_at,
                subscribers=mirror.stream.reader_count if mirror.stream is not None else 0,
                viewers=mirror.stream.counters.total_connections if mirror.stream is not None else 0,
                bytes_in=mirror.player.bytes_in,
                state=mirror.state,
            )
            for mirror in self._mirrors.values()
        ]

    async def close(self) -> None:
        """End every mirror (node shutdown)."""
        self._closed = True
        for starting in list(self._starting.values()):
            starting.cancel()
        tasks = [mirror.task for mirror in self._mirrors.values() if mirror.task is not None]
        for mirror in list(self._mirrors.values()):
            mirror.stop()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
