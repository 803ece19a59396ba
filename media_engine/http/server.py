"""The media HTTP server (port 3333 by default): HLS playlists and segments, on OvenMediaEngine's paths.

Routes (``{app}`` and ``{stream}`` are path segments; the virtual host comes from the Host header
through `ControlPlane.resolve_application`):

- ``GET /{app}/{stream}/ts:playlist.m3u8`` (alias ``/{app}/{stream}/playlist.m3u8``): media playlist.
  If the stream is live but has no segment yet, the answer waits up to about one segment duration.
- ``GET /{app}/{stream}/{segment}.ts``: a TS segment of the playlist window.
- LL-HLS (when the server is given an `LlHlsPackager`): ``GET /{app}/{stream}/llhls.m3u8`` (master
  playlist), ``/{app}/{stream}/chunklist_*.m3u8`` (media playlist; ``_HLS_msn``/``_HLS_part`` block
  until that segment/part exists: 400 on bad values, 503 if it does not come in time) and
  ``/{app}/{stream}/*.m4s`` (init segment, segments, parts; the preload hint's part is answered
  once it is complete).
- ``OPTIONS`` anything (without an OPTIONS route of its own): CORS preflight. Every answer carries
  ``Access-Control-Allow-Origin: *``.

Segments and parts are sent from the packagers' files with sendfile (`media_engine.http.sendfile`), never
read into memory.

Connections pass `media_engine.http.limits` first (header, keep-alive and send timeouts, a connection
cap answered 503), and a ``{stream}`` the stream name rule refuses is answered 400 on every route.

Other modules add their own routes (WHIP/WHEP, thumbnails, LL-HLS...) with `MediaHttpServer.add_route`
before `start()`, and can use `MediaHttpServer.resolve_stream` to map a request to a stream.

Accounting: every body byte sent counts in the stream's ``counters.sent``. HLS has no connection
to count, so a viewer is a client (address and User-Agent) that fetched the stream's playlist or
segments within the last ``viewer_window`` seconds (`VIEWER_WINDOW` by default): a new one is
``counters.connection_opened("hls")``, and it is ``connection_closed("hls")`` once silent for that
long (or when its stream is gone). LL-HLS viewers are counted the same way, as ``"llhls"``.
`ViewerTracker.sessions` lists a stream's current viewers (address, port, User-Agent, first and
last request) for the engine's stats reports.

Behind a web-server front (`make run`'s nginx, `media_engine.http.front`), the client is the one the front
vouches for, and the answers it gives from its cache are counted from its viewer log
(`account_cached_answers`) as if they had been given here.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

from aiohttp import web

from media_engine.admission import (
    ALLOWED,
    PLAY,
    SESSION_QUERY_KEY,
    AdmissionRequest,
    Decision,
    GrantCache,
    add_session_to_playlist,
    admit,
)
from media_engine.control import ApplicationConfig, ControlPlane
from media_engine.hls.llhls import (
    MASTER_PLAYLIST_NAME,
    BadBlockingRequest,
    LlHlsPackager,
    LlHlsSegmenter,
    parse_blocking_request,
)
from media_engine.hls.segmenter import HlsPackager, HlsSegmenter
from media_engine.http.front import CachedAnswer
from media_engine.http.limits import GuardedProtocolFactory, HttpLimits
from media_engine.http.sendfile import file_response, file_size
from media_engine.http.siblings import client_port
from media_engine.internal_auth import JOB_QUERY_KEY
from media_engine.listeners import open_listeners
from media_engine.names import InvalidStreamName, check_stream_name
from media_engine.registry import LiveStream, StreamKey, StreamRegistry
from media_engine.tls import CertificateTable

logger = logging.getLogger(__name__)

DEFAULT_PORT = 3333
VIEWER_WINDOW = 30.0  # seconds without a request before an HLS viewer no longer counts
VIEWER_SWEEP_INTERVAL = 5.0
MAX_AGENTS_PER_ADDRESS = 32  # HLS viewer sessions one client address may count per stream and protocol
MAX_USER_AGENT = 256  # characters of a viewer's User-Agent kept
MAX_REPORTED_VIEWERS = 1000  # viewer sessions a stream's report lists (its counters count them all)
FIRST_SEGMENT_GRACE = 1.0  # waited beyond one segment duration for the first segment

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
FMP4_TYPE = "video/mp4"
CORS_HEADERS = {"Access-Control-Allow-Origin": "*"}
# Cache-Control of the media answers, for players and for HTTP caches in front of the engine (the nginx cache
# tier, deploy/nginx/streamhub-media-cache.conf). Segments, parts and init segments never change once readable
# and their names carry the publication's session id: immutable. Playlists change: HLS ones are cached for a
# second (a fraction of a segment); the LL-HLS media playlist changes with every part, so its plain form is
# revalidated every time, while a blocking reload (``_HLS_msn``/``_HLS_part``) is the same answer for the same
# URL (any playlist holding that part will do) and is cached briefly, so that a cache lets many players waiting
# for one part cost one request. 404s are cached for a second; other errors, and every answer to a request that
# passed an admission check (access control: a shared cache must never give it to a client admission would
# refuse), are not cached by shared caches.
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_PRIVATE_IMMUTABLE = "private, max-age=31536000, immutable"
CACHE_PLAYLIST = "public, max-age=1"
CACHE_LIVE_PLAYLIST = "no-cache"
CACHE_BLOCKING_RELOAD = "public, max-age=2"
CACHE_NOT_FOUND = "public, max-age=1"
CACHE_ERROR = "no-store"
CACHE_PRIVATE = "private, no-cache"
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Max-Age": "86400",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVER_KEY: web.AppKey[MediaHttpServer] = web.AppKey("media_server")
# Where an admitted HLS/LL-HLS request keeps its viewer's session token (None: no access control).
ACCESS_TOKEN_KEY = "streamhub_access_session"
# Set on an HLS/LL-HLS request that admission checked (its answer is for that client only).
ADMISSION_CHECKED_KEY = "streamhub_admission_checked"
# Query parameters of LL-HLS blocking reloads: not part of what a viewer was admitted with.
_RELOAD_PARAMETERS = {SESSION_QUERY_KEY, "_HLS_msn", "_HLS_part", "_HLS_skip"}


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """What a ``/{app}/{stream}/...`` request refers to."""

    config: ApplicationConfig
    key: StreamKey
    stream: LiveStream | None  # None if not live on this node


@dataclass(slots=True)
class HttpViewer:
    """One HLS/LL-HLS viewer session: a client (address and User-Agent) that fetches a stream's
    playlist or segments. ``number`` counts a stream's sessions from 1 (ids stay stable across
    reports); times are Unix seconds; ``port`` is that of the last request."""

    number: int
    protocol: str
    address: str
    port: int
    user_agent: str
    first_seen: float
    last_seen: float
    last_request: float = 0.0  # on the tracker's clock (the window is measured on it)

    def as_dict(self) -> dict:
        return {
            "number": self.number,
            "protocol": self.protocol,
            "address": self.address,
            "port": self.port,
            "user_agent": self.user_agent,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }


class ViewerTracker:
    """HLS viewers per stream and protocol ("hls", "llhls"): sessions seen within ``window`` seconds.

    HLS has no connection, so a session is a client address and User-Agent (two players behind one
    NAT address are two viewers). One address counts at most `MAX_AGENTS_PER_ADDRESS` sessions per
    stream: more User-Agents from it share one session with an empty agent, so a client that varies
    its header cannot grow the table (or the viewer count) without bound."""

    def __init__(
        self,
        window: float = VIEWER_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.window = window
        self.clock = clock
        self.wall_clock = wall_clock
        self._seen: dict[tuple[LiveStream, str], dict[tuple[str, str], HttpViewer]] = {}
        self._per_address: dict[tuple[LiveStream, str], Counter[str]] = {}
        self._numbers: dict[LiveStream, int] = {}

    def seen(
        self, stream: LiveStream, address: str, protocol: str = "hls", port: int = 0, user_agent: str = ""
    ) -> None:
        """A request of ``address`` (from ``port``, with ``user_agent``) for ``stream`` over ``protocol``."""
        key = (stream, protocol)
        clients = self._seen.get(key)
        if clients is None:
            clients = self._seen[key] = {}
            self._per_address[key] = Counter()
        user_agent = user_agent[:MAX_USER_AGENT]
        viewer = clients.get((address, user_agent))
        if viewer is None and self._per_address[key][address] >= MAX_AGENTS_PER_ADDRESS:
            user_agent = ""  # the address's shared session
            viewer = clients.get((address, user_agent))
        now = self.wall_clock()
        if viewer is None:
            number = self._numbers[stream] = self._numbers.get(stream, 0) + 1
            viewer = clients[(address, user_agent)] = HttpViewer(number, protocol, address, port, user_agent, now, now)
            self._per_address[key][address] += 1
            stream.counters.connection_opened(protocol)
        viewer.port = port
        viewer.last_seen = now
        viewer.last_request = self.clock()

    def count(self, stream: LiveStream, protocol: str = "hls") -> int:
        return len(self._seen.get((stream, protocol), ()))

    def sessions(self, stream: LiveStream, limit: int = MAX_REPORTED_VIEWERS) -> list[HttpViewer]:
        """The stream's current sessions over every protocol, oldest first, at most ``limit`` of them
        (a report stays small whatever the audience; the counters still count everyone)."""
        viewers = [viewer for (each, _), clients in self._seen.items() if each is stream for viewer in clients.values()]
        return heapq.nsmallest(limit, viewers, key=lambda viewer: viewer.number)

    def sweep(self) -> None:
        """Forget the viewers silent for longer than the window, and all those of ended streams."""
        limit = self.clock() - self.window
        for key, clients in list(self._seen.items()):
            stream, protocol = key
            for client, viewer in list(clients.items()):
                if stream.ended or viewer.last_request < limit:
                    del clients[client]
                    self._per_address[key][client[0]] -= 1
                    stream.counters.connection_closed(protocol)
            if not clients:
                del self._seen[key], self._per_address[key]
        live = {stream for stream, _ in self._seen}
        for stream in [stream for stream in self._numbers if stream not in live and stream.ended]:
            del self._numbers[stream]

    def clear(self) -> None:
        for (stream, protocol), clients in self._seen.items():
            for _ in clients:
                stream.counters.connection_closed(protocol)
        self._seen.clear()
        self._per_address.clear()
        self._numbers.clear()


def _peer_port(request: web.Request) -> int:
    """The client's TCP port (0 if unknown; the one a sibling worker vouched for when it proxied)."""
    vouched = client_port(request)
    if vouched is not None:
        return vouched
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    return int(peer[1]) if isinstance(peer, tuple) and len(peer) >= 2 else 0


def _protocol_of(file: str) -> str | None:
    """ "hls" or "llhls" for the file of a stream's HLS/LL-HLS route, None for anything else."""
    chunklist = file.startswith("chunklist_") and file.endswith(".m3u8")
    if file.endswith(".m4s") or file == MASTER_PLAYLIST_NAME or chunklist:
        return "llhls"
    if file.endswith(".ts") or file in ("ts:playlist.m3u8", "playlist.m3u8"):
        return "hls"
    return None


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
    request.app[SERVER_KEY].requests[request.match_info.route.name or ""] += 1
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
        if exc.status >= 400 and "Cache-Control" not in exc.headers:
            exc.headers["Cache-Control"] = CACHE_NOT_FOUND if exc.status == 404 else CACHE_ERROR
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
        llhls: LlHlsPackager | None = None,
        limits: HttpLimits | None = None,
        tls_port: int | None = None,
        certificates: CertificateTable | None = None,
        reuse_port: bool = False,
        private: tuple[str, int] | None = None,
        tls_host: str | None = None,
    ) -> None:
        """``tls_port``: the HTTPS port (OME's TLSPort) serving the same routes with the vhosts'
        ``certificates``; it listens only while some vhost has one (`update_tls_listener`), on
        ``tls_host`` (None: ``host``; the public address when ``host`` is a web server's upstream).
        ``reuse_port``: share the public ports with sibling worker processes (SO_REUSEPORT);
        ``private``: a second plain listener (host, port; 0 = any) where siblings reach this process."""
        self.registry = registry
        self.control = control
        self.packager = packager
        self.llhls = llhls
        self.host = host
        self._requested_port = port
        self.port = port
        self.viewers = ViewerTracker(viewer_window)
        # Requests received, by route name ("llhls_chunklist", "llhls_file", "hls_playlist"...; "" for no route):
        # what players (or a cache tier in front) cost the engine.
        self.requests: Counter[str] = Counter()
        self.remote = None  # the node's RemoteStreams: viewers of streams other nodes hold (mirrors)
        self.grants = GrantCache()  # admitted HLS/LL-HLS viewers (signed URL, ACL key or webhook)
        self.app = web.Application(middlewares=[cors_middleware])
        self.app[SERVER_KEY] = self
        self.limits = limits or HttpLimits()
        self.connections: GuardedProtocolFactory | None = None  # open/refused counts once started
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.reuse_port = reuse_port
        self._private_address = private
        self._private_listener: asyncio.Server | None = None
        self.private_port: int | None = None
        self._requested_tls_port = tls_port
        self.tls_host = tls_host or host
        self.tls_port: int | None = None  # while the HTTPS listener is open
        self.certificates = certificates
        self._tls_listener: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.add_route("GET", "/{app}/{stream}/ts:playlist.m3u8", self.handle_playlist, name="hls_playlist")
        self.add_route("GET", "/{app}/{stream}/playlist.m3u8", self.handle_playlist, name="hls_playlist_alias")
        self.add_route("GET", r"/{app}/{stream}/{segment:[^/]+\.ts}", self.handle_segment, name="hls_segment")
        if llhls is not None:
            self.add_route("GET", f"/{{app}}/{{stream}}/{MASTER_PLAYLIST_NAME}", self.handle_llhls_master, name="llhls")
            chunklist = r"/{app}/{stream}/{chunklist:chunklist_[^/]+\.m3u8}"
            self.add_route("GET", chunklist, self.handle_llhls_chunklist, name="llhls_chunklist")
            self.add_route("GET", r"/{app}/{stream}/{file:[^/]+\.m4s}", self.handle_llhls_file, name="llhls_file")

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
        """The application (by Host header) and stream named by the ``app``/``stream`` path parts.
        A name the stream name rule refuses is answered 400 here, for every route of the port."""
        app = request.match_info.get("app", "")
        name = request.match_info.get("stream", "")
        try:
            check_stream_name(name)
        except InvalidStreamName as error:
            raise web.HTTPBadRequest(text=f"{error}\n") from None
        config = await self.control.resolve_application(_request_host(request), app)
        if config is None:
            return None
        key = StreamKey(config.vhost, config.app, name)
        return StreamTarget(config, key, self.registry.get(key))

    async def with_remote(self, target: StreamTarget) -> StreamTarget:
        """``target`` with its stream mirrored from the node that holds it, when it is not live here
        (after the viewer's admission: a refused request never starts a mirror)."""
        if target.stream is not None or self.remote is None:
            return target
        stream = await self.remote.ensure(target.key)
        return StreamTarget(target.config, target.key, stream) if stream is not None else target

    async def check_access(self, request: web.Request, target: StreamTarget, direction: str, protocol: str) -> Decision:
        """The admission decision for ``request`` (``direction`` is `admission.PUBLISH` or `PLAY`,
        ``protocol`` "hls", "llhls", "webrtc"...); raises 403 if refused. WHIP/WHEP call this too."""
        rules = target.config.access
        if not rules.checks(direction, protocol, target.key.name):
            return ALLOWED
        port = _peer_port(request)
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        admission = AdmissionRequest(
            direction,
            protocol,
            url,
            request.remote or "",
            port,
            target.key.name,
            request.headers.get("User-Agent", ""),
            vhost=target.key.vhost,
            app=target.key.app,
        )
        try:
            decision = await admit(rules, admission)
        except Exception:
            logger.exception("admission check of %s failed", target.key)
            decision = Decision(False, "the admission check failed")
        if not decision.allowed:
            reason = decision.reason
            logger.info("%s %s of %s by %s refused: %s", protocol, direction, target.key, request.remote, reason)
            raise web.HTTPForbidden(text=f"access denied: {decision.reason or 'not allowed'}\n")
        return decision

    async def _admit_viewer(self, request: web.Request, target: StreamTarget, protocol: str) -> None:
        """Admission of an HLS/LL-HLS request, once per viewer: the first request is checked, the
        playlists it gets carry a session token (``session=``) that later requests are let in with."""
        request[ACCESS_TOKEN_KEY] = None
        if not target.config.access.checks(PLAY, protocol, target.key.name):
            return
        request[ADMISSION_CHECKED_KEY] = True
        if JOB_QUERY_KEY in request.query:
            # A media job (HLS dump) sends its job token with every request (a cheap HMAC check, never
            # a webhook): its playlists stay as they are, without a session on their URIs.
            await self.check_access(request, target, PLAY, protocol)
            return
        client = request.remote or ""
        stream = (*target.key, protocol)
        token = request.query.get(SESSION_QUERY_KEY)
        grant = self.grants.lookup(token, stream, client) if token else None
        query = tuple(sorted((k, v) for k, v in request.query.items() if k not in _RELOAD_PARAMETERS))
        request_key = (client, stream, query)
        if grant is None:
            grant = self.grants.for_request(request_key)
        if grant is None:
            decision = await self.check_access(request, target, PLAY, protocol)
            grant = self.grants.add(request_key, stream, client, decision)
        request[ACCESS_TOKEN_KEY] = grant.token

    @staticmethod
    def _with_session(request: web.Request, playlist: bytes) -> bytes:
        token = request.get(ACCESS_TOKEN_KEY)
        return add_session_to_playlist(playlist, token) if token else playlist

    @staticmethod
    def _cache_control(request: web.Request, shared: str, private: str = CACHE_PRIVATE) -> str:
        """``shared``, or ``private`` for the answer to a request admission checked (a playlist then carries
        the viewer's session token, or a job's; a segment or part was given to that client only)."""
        return private if request.get(ADMISSION_CHECKED_KEY) else shared

    def count_sent(self, request: web.Request, stream: LiveStream, nbytes: int) -> None:
        """Account an answer of ``nbytes`` body bytes to ``stream`` (nothing for HEAD)."""
        if request.method != "HEAD":
            stream.counters.sent(nbytes)

    # --- HLS -----------------------------------------------------------------------------------

    async def _segmenter(self, request: web.Request, wait: bool) -> HlsSegmenter | None:
        target = await self.resolve_stream(request)
        if target is None:
            return None
        await self._admit_viewer(request, target, "hls")
        target = await self.with_remote(target)
        segmenter = self.packager.watch(target.key)  # packaging runs while players ask
        if wait and target.stream is not None and (segmenter is None or segmenter.playlist() is None):
            timeout = target.config.hls_segment_duration + FIRST_SEGMENT_GRACE
            segmenter = await self.packager.wait_ready(target.key, timeout)
        return segmenter

    async def handle_playlist(self, request: web.Request) -> web.StreamResponse:
        segmenter = await self._segmenter(request, wait=True)
        playlist = segmenter.playlist() if segmenter is not None else None
        if segmenter is None or playlist is None:
            raise web.HTTPNotFound(text="stream not found\n")
        playlist = self._with_session(request, playlist)
        self._account(request, segmenter, len(playlist))
        cache = self._cache_control(request, CACHE_PLAYLIST)
        return web.Response(body=playlist, content_type=PLAYLIST_TYPE, headers={"Cache-Control": cache})

    async def handle_segment(self, request: web.Request) -> web.StreamResponse:
        segmenter = await self._segmenter(request, wait=False)
        segment = segmenter.segment(request.match_info["segment"]) if segmenter is not None else None
        opened = segment.open() if segment is not None else None  # (open: it stays readable if evicted now)
        if segmenter is None or opened is None:
            raise web.HTTPNotFound(text="segment not found\n")
        cache = self._cache_control(request, CACHE_IMMUTABLE, CACHE_PRIVATE_IMMUTABLE)
        return await self._send_file(request, segmenter, opened, SEGMENT_TYPE, cache, "hls", "segment not found")

    async def _send_file(
        self,
        request: web.Request,
        segmenter: HlsSegmenter | LlHlsSegmenter,
        opened: BinaryIO,
        content_type: str,
        cache: str,
        protocol: str,
        not_found: str,
    ) -> web.StreamResponse:
        """Answer with a segment or part file (sendfile: its bytes never pass through the heap)."""
        size = file_size(opened)
        if size == 0:
            opened.close()
            raise web.HTTPNotFound(text=f"{not_found}\n")
        self._account(request, segmenter, size, protocol)
        return await file_response(
            request,
            opened,
            content_type=content_type,
            headers={"Cache-Control": cache, **CORS_HEADERS},
            send_timeout=self.limits.send_timeout,
            on_send_timeout=self._count_send_timeout,
        )

    def _count_send_timeout(self) -> None:
        if self.connections is not None:
            self.connections.send_timeouts += 1

    def _account(
        self, request: web.Request, segmenter: HlsSegmenter | LlHlsSegmenter, nbytes: int, protocol: str = "hls"
    ) -> None:
        stream = segmenter.stream
        if stream is None:
            return
        self.count_sent(request, stream, nbytes)
        if not stream.ended:
            user_agent = request.headers.get("User-Agent", "")
            self.viewers.seen(stream, request.remote or "", protocol, _peer_port(request), user_agent)

    async def account_cached_answers(self, answers: Iterable[tuple[CachedAnswer, int]]) -> None:
        """Count the answers a web-server front gave from its cache (`media_engine.http.front`; each answer with
        how many times it was given) as if this server had given them: bytes sent and the viewer's session,
        for the streams this process packages (a sibling worker's, or a name that is not live, are another's
        or nobody's). Applications are resolved once per batch."""
        configs: dict[tuple[str, str], ApplicationConfig | None] = {}
        for answer, times in answers:
            parts = answer.path.split("/")
            protocol = _protocol_of(parts[3]) if len(parts) == 4 else None
            if protocol is None:
                continue
            _, app, name, _ = parts
            try:
                check_stream_name(name)
            except InvalidStreamName:
                continue
            if (answer.host, app) not in configs:
                configs[answer.host, app] = await self.control.resolve_application(answer.host, app)
            config = configs[answer.host, app]
            packager = self.packager if protocol == "hls" else self.llhls
            if config is None or packager is None:
                continue
            key = StreamKey(config.vhost, config.app, name)
            segmenter = packager.get(key)
            stream = segmenter.stream if segmenter is not None else None
            if stream is None:
                continue
            packager.watch(key)  # its players keep the packaging going, even when the cache answers them all
            stream.counters.sent(answer.nbytes * times)
            if answer.status == 200 and not stream.ended:
                self.viewers.seen(stream, answer.address, protocol, 0, answer.user_agent)

    # --- LL-HLS --------------------------------------------------------------------------------

    async def _llhls_segmenter(self, request: web.Request, wait: bool) -> LlHlsSegmenter | None:
        target = await self.resolve_stream(request)
        if target is None or self.llhls is None:
            return None
        await self._admit_viewer(request, target, "llhls")
        target = await self.with_remote(target)
        segmenter = self.llhls.watch(target.key)
        if wait and target.stream is not None and (segmenter is None or segmenter.playlist() is None):
            timeout = target.config.llhls_segment_duration + FIRST_SEGMENT_GRACE
            segmenter = await self.llhls.wait_ready(target.key, timeout)
        return segmenter

    async def handle_llhls_master(self, request: web.Request) -> web.StreamResponse:
        segmenter = await self._llhls_segmenter(request, wait=True)
        playlist = segmenter.master_playlist() if segmenter is not None else None
        if segmenter is None or playlist is None:
            raise web.HTTPNotFound(text="stream not found\n")
        playlist = self._with_session(request, playlist)
        self._account(request, segmenter, len(playlist), "llhls")
        cache = self._cache_control(request, CACHE_PLAYLIST)
        return web.Response(body=playlist, content_type=PLAYLIST_TYPE, headers={"Cache-Control": cache})

    async def handle_llhls_chunklist(self, request: web.Request) -> web.StreamResponse:
        try:
            blocking = parse_blocking_request(request.query)
        except BadBlockingRequest as error:
            raise web.HTTPBadRequest(text=f"{error}\n") from None
        segmenter = await self._llhls_segmenter(request, wait=True)
        name = request.match_info["chunklist"]
        if segmenter is None or segmenter.playlist() is None or name != segmenter.chunklist_name:
            raise web.HTTPNotFound(text="playlist not found\n")
        if blocking is not None:
            msn, part = blocking
            try:
                segmenter.check_blocking_request(msn, part)
            except BadBlockingRequest as error:
                raise web.HTTPBadRequest(text=f"{error}\n") from None
            if not await segmenter.wait_for(msn, part, segmenter.blocking_timeout):
                raise web.HTTPServiceUnavailable(text="the requested part did not come in time\n")
        playlist = segmenter.playlist()
        assert playlist is not None
        playlist = self._with_session(request, playlist)
        self._account(request, segmenter, len(playlist), "llhls")
        cache = self._cache_control(request, CACHE_LIVE_PLAYLIST if blocking is None else CACHE_BLOCKING_RELOAD)
        return web.Response(body=playlist, content_type=PLAYLIST_TYPE, headers={"Cache-Control": cache})

    async def handle_llhls_file(self, request: web.Request) -> web.StreamResponse:
        segmenter = await self._llhls_segmenter(request, wait=False)
        name = request.match_info["file"]
        opened = segmenter.open_file(name) if segmenter is not None else None
        if segmenter is not None and opened is None:  # the preload hint's part: answered once complete
            opened = await segmenter.wait_for_file(name, segmenter.blocking_timeout)
        if segmenter is None or opened is None:
            raise web.HTTPNotFound(text="file not found\n")
        cache = self._cache_control(request, CACHE_IMMUTABLE, CACHE_PRIVATE_IMMUTABLE)
        return await self._send_file(request, segmenter, opened, FMP4_TYPE, cache, "llhls", "file not found")

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0: any free port, then readable in ``.port``), with `limits`."""
        runner = web.AppRunner(self.app, access_log=None, keepalive_timeout=self.limits.keepalive_timeout)
        await runner.setup()
        assert runner.server is not None
        # Our own listener instead of web.TCPSite: every connection passes the guard before aiohttp.
        self.connections = GuardedProtocolFactory(runner.server, self.limits)
        try:
            self._listener, self._private_listener = await open_listeners(
                self.connections,
                self.host,
                self._requested_port,
                reuse_port=self.reuse_port,
                private_address=self._private_address,
            )
        except BaseException:
            await runner.cleanup()
            raise
        if self._private_listener is not None:
            self.private_port = self._private_listener.sockets[0].getsockname()[1]
        self._runner = runner
        self.port = self._listener.sockets[0].getsockname()[1]
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_viewers(), name="hls viewers")
        logger.info(
            "media HTTP server listening on %s:%s (at most %d connections; timeouts: header %ss, keep-alive %ss, "
            "send %ss)", self.host, self.port, self.connections.max_connections, self.limits.header_timeout,
            self.limits.keepalive_timeout, self.limits.send_timeout,
        )  # fmt: skip

    async def update_tls_listener(self) -> None:
        """Open the HTTPS port once a vhost has a certificate, close it when none has one any more.
        Connections share the plain port's guard (the same connection cap and timeouts)."""
        wanted = (
            self._runner is not None
            and self._requested_tls_port is not None
            and self.certificates is not None
            and self.certificates.has_certificates
        )
        if wanted and self._tls_listener is None:
            self._tls_listener = await asyncio.get_running_loop().create_server(
                self.connections,
                self.tls_host,
                self._requested_tls_port,
                ssl=self.certificates.server_context(),
                ssl_handshake_timeout=self.limits.header_timeout,
                reuse_address=True,
                reuse_port=self.reuse_port or None,
                backlog=1024,
            )
            self.tls_port = self._tls_listener.sockets[0].getsockname()[1]
            logger.info("media HTTPS listening on %s:%s", self.tls_host, self.tls_port)
        elif not wanted and self._tls_listener is not None:
            await self._close_tls_listener()
            logger.info("media HTTPS closed: no vhost has a certificate")

    async def _close_tls_listener(self) -> None:
        listener, self._tls_listener, self.tls_port = self._tls_listener, None, None
        if listener is not None:
            listener.close()
            await listener.wait_closed()

    async def stop(self) -> None:
        """Stop listening and forget the viewers."""
        await self._close_tls_listener()
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
            self._sweeper = None
        if self._private_listener is not None:
            self._private_listener.close()
        if self._listener is not None:
            self._listener.close()  # stop accepting; the runner's cleanup ends the open connections
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None
        if self._private_listener is not None:
            await self._private_listener.wait_closed()
            self._private_listener = None
        self.viewers.clear()

    async def _sweep_viewers(self) -> None:
        interval = min(VIEWER_SWEEP_INTERVAL, self.viewers.window)
        while True:
            await asyncio.sleep(interval)
            self.viewers.sweep()
            self.grants.sweep()
