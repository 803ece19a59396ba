"""The media HTTP server (port 3333 by default): HLS playlists and segments, on OvenMediaEngine's paths.

Routes (``{app}`` and ``{stream}`` are path segments; the virtual host comes from the Host header
through `ControlPlane.resolve_application`):

- ``GET /{app}/{stream}/ts:playlist.m3u8`` (alias ``/{app}/{stream}/playlist.m3u8``): media playlist.
  If the stream is live but has no segment yet, the answer waits up to about one segment duration.
- ``GET /{app}/{stream}/{segment}.ts``: a TS segment of the playlist window.
- ``OPTIONS`` anything (without an OPTIONS route of its own): CORS preflight. Every answer carries
  ``Access-Control-Allow-Origin: *``.

Other modules add their own routes (WHIP/WHEP, thumbnails, LL-HLS...) with `MediaHttpServer.add_route`
before `start()`, and can use `MediaHttpServer.resolve_stream` to map a request to a stream.

Accounting: every body byte sent counts in the stream's ``counters.sent``. HLS has no connection
to count, so a viewer is a client address that fetched the stream's playlist or segments within
the last `VIEWER_WINDOW` seconds: a new address is ``counters.connection_opened("hls")``, and it is
``connection_closed("hls")`` once silent for that long (or when its stream is gone).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from media_engine.control import ApplicationConfig, ControlPlane
from media_engine.hls.segmenter import HlsPackager, HlsSegmenter
from media_engine.registry import LiveStream, StreamKey, StreamRegistry

logger = logging.getLogger(__name__)

DEFAULT_PORT = 3333
VIEWER_WINDOW = 30.0  # seconds without a request before an HLS viewer no longer counts
VIEWER_SWEEP_INTERVAL = 5.0
FIRST_SEGMENT_GRACE = 1.0  # waited beyond one segment duration for the first segment

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
CORS_HEADERS = {"Access-Control-Allow-Origin": "*"}
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Max-Age": "86400",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVER_KEY: web.AppKey[MediaHttpServer] = web.AppKey("media_server")


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """What a ``/{app}/{stream}/...`` request refers to."""

    config: ApplicationConfig
    key: StreamKey
    stream: LiveStream | None  # None if not live on this node


class ViewerTracker:
    """HLS viewers per stream: distinct client addresses seen within ``window`` seconds."""

    def __init__(self, window: float = VIEWER_WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._seen: dict[LiveStream, dict[str, float]] = {}

    def seen(self, stream: LiveStream, address: str) -> None:
        """A request of ``address`` for ``stream``."""
        clients = self._seen.get(stream)
        if clients is None:
            clients = self._seen[stream] = {}
        if address not in clients:
            stream.counters.connection_opened("hls")
        clients[address] = self.clock()

    def count(self, stream: LiveStream) -> int:
        return len(self._seen.get(stream, ()))

    def sweep(self) -> None:
        """Forget the viewers silent for longer than the window, and all those of ended streams."""
        limit = self.clock() - self.window
        for stream, clients in list(self._seen.items()):
            for address, last in list(clients.items()):
                if stream.ended or last < limit:
                    del clients[address]
                    stream.counters.connection_closed("hls")
            if not clients:
                del self._seen[stream]

    def clear(self) -> None:
        for stream, clients in self._seen.items():
            for _ in clients:
                stream.counters.connection_closed("hls")
        self._seen.clear()


def _request_host(request: web.Request) -> str:
    """The host name of the Host header, without port."""
    try:
        host = request.url.host
    except ValueError:
        host = None
    return host or ""


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer CORS preflights, and allow any origin on every answer (errors included).

    An OPTIONS request is answered here unless a route was added for OPTIONS on its path (WHIP,
    for instance, may answer OPTIONS itself with ICE servers).
    """
    if request.method == "OPTIONS" and request.match_info.http_exception is not None:
        headers = dict(PREFLIGHT_HEADERS)
        requested = request.headers.get("Access-Control-Request-Headers")
        if requested:
            headers["Access-Control-Allow-Headers"] = requested
        return web.Response(status=204, headers=headers)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(CORS_HEADERS)
        raise
    if not response.prepared:
        response.headers.update(CORS_HEADERS)
    return response


class MediaHttpServer:
    """The aiohttp application of the media port. HLS routes are built in; others can be added."""

    def __init__(
        self,
        registry: StreamRegistry,
        control: ControlPlane,
        packager: HlsPackager,
        host: str = "0.0.0.0",
        port: int = DEFAULT_PORT,
        *,
        viewer_window: float = VIEWER_WINDOW,
    ) -> None:
        self.registry = registry
        self.control = control
        self.packager = packager
        self.host = host
        self._requested_port = port
        self.port = port
        self.viewers = ViewerTracker(viewer_window)
        self.app = web.Application(middlewares=[cors_middleware])
        self.app[SERVER_KEY] = self
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.add_route("GET", "/{app}/{stream}/ts:playlist.m3u8", self.handle_playlist, name="hls_playlist")
        self.add_route("GET", "/{app}/{stream}/playlist.m3u8", self.handle_playlist, name="hls_playlist_alias")
        self.add_route("GET", r"/{app}/{stream}/{segment:[^/]+\.ts}", self.handle_segment, name="hls_segment")

    # --- extension points -----------------------------------------------------------------------

    def add_route(self, method: str, path: str, handler: Handler, *, name: str | None = None) -> None:
        """Add a route (aiohttp path syntax) before `start()`. GET routes also answer HEAD."""
        if self._runner is not None:
            raise RuntimeError("routes must be added before the server starts")
        if method.upper() == "GET":
            self.app.router.add_get(path, handler, name=name)
        else:
            self.app.router.add_route(method, path, handler, name=name)

    async def resolve_stream(self, request: web.Request) -> StreamTarget | None:
        """The application (by Host header) and stream named by the ``app``/``stream`` path parts."""
        app = request.match_info.get("app", "")
        name = request.match_info.get("stream", "")
        config = await self.control.resolve_application(_request_host(request), app)
        if config is None:
            return None
        key = StreamKey(config.vhost, config.app, name)
        return StreamTarget(config, key, self.registry.get(key))

    def count_sent(self, request: web.Request, stream: LiveStream, nbytes: int) -> None:
        """Account an answer of ``nbytes`` body bytes to ``stream`` (nothing for HEAD)."""
        if request.method != "HEAD":
            stream.counters.sent(nbytes)

    # --- HLS -----------------------------------------------------------------------------------

    async def _segmenter(self, request: web.Request, wait: bool) -> HlsSegmenter | None:
        target = await self.resolve_stream(request)
        if target is None:
            return None
        segmenter = self.packager.get(target.key)
        if wait and target.stream is not None and (segmenter is None or segmenter.playlist() is None):
            timeout = target.config.hls_segment_duration + FIRST_SEGMENT_GRACE
            segmenter = await self.packager.wait_ready(target.key, timeout)
        return segmenter

    async def handle_playlist(self, request: web.Request) -> web.StreamResponse:
        segmenter = await self._segmenter(request, wait=True)
        playlist = segmenter.playlist() if segmenter is not None else None
        if segmenter is None or playlist is None:
            raise web.HTTPNotFound(text="stream not found\n")
        self._account(request, segmenter, len(playlist))
        return web.Response(body=playlist, content_type=PLAYLIST_TYPE, headers={"Cache-Control": "no-cache, no-store"})

    async def handle_segment(self, request: web.Request) -> web.StreamResponse:
        segmenter = await self._segmenter(request, wait=False)
        segment = segmenter.segment(request.match_info["segment"]) if segmenter is not None else None
        if segmenter is None or segment is None:
            raise web.HTTPNotFound(text="segment not found\n")
        self._account(request, segmenter, len(segment.data))
        return web.Response(body=segment.data, content_type=SEGMENT_TYPE, headers={"Cache-Control": "max-age=60"})

    def _account(self, request: web.Request, segmenter: HlsSegmenter, nbytes: int) -> None:
        stream = segmenter.stream
        if stream is None:
            return
        self.count_sent(request, stream, nbytes)
        if not stream.ended:
            self.viewers.seen(stream, request.remote or "")

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0: any free port, then readable in ``.port``)."""
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple):
                self.port = address[1]
                break
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_viewers(), name="hls viewers")
        logger.info("media HTTP server listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and forget the viewers."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
            self._sweeper = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.viewers.clear()

    async def _sweep_viewers(self) -> None:
        interval = min(VIEWER_SWEEP_INTERVAL, self.viewers.window)
        while True:
            await asyncio.sleep(interval)
            self.viewers.sweep()
