"""Worker processes behind one public media HTTP port: a request for a stream (or a WebRTC session)
that a sibling worker holds is proxied to that sibling's private HTTP listener, so that only the
holder packages a stream's HLS/LL-HLS (one set of segment numbers, whichever worker a player's
connection landed on) and only the holder serves its WebRTC sessions.

The proxying worker signs the client's address (HMAC with the internal secret) in
``X-StreamHub-Client``; the holder believes that header only with a valid signature, so it counts
and admits the real viewer, not the sibling.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from media_engine.registry import StreamKey
from media_engine.relay.mirror import Locate

logger = logging.getLogger(__name__)

CLIENT_HEADER = "X-StreamHub-Client"
# How long a signed client header stays good (the siblings share the clock of one machine).
SIGNATURE_TTL = 30.0
# How long a holder found is reused (each HLS request of a sibling's stream asks).
LOCATE_CACHE_SECONDS = 1.0
# Routes proxied when the stream they name is held by a sibling.
STREAM_ROUTES = frozenset(
    {
        "hls_playlist",
        "hls_playlist_alias",
        "hls_segment",
        "llhls",
        "llhls_chunklist",
        "llhls_file",
        "profile_hls_master",
        "profile_llhls_master",
        "webrtc_offer",
    }
)
# Routes proxied when the session id they name belongs to a sibling (``<worker>.<token>``).
SESSION_ROUTES = frozenset({"webrtc_session_patch", "webrtc_session_delete"})
# Headers of one hop, never forwarded (RFC 9110 7.6.1), plus what aiohttp sets itself.
_HOP_HEADERS = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Content-Length",
        CLIENT_HEADER,
    )
)
MAX_BODY = 64 * 1024  # WHIP/WHEP offers and trickle fragments
# A holder's answer up to this size is passed on whole; a longer one (a segment) piece by piece as it comes,
# never held in memory whole.
STREAM_ANSWERS_FROM = 64 * 1024


LocateWorker = Callable[[str], Awaitable["str | None"]]  # worker tag -> http base of its private listener


def _signature(secret: str, address: str, port: int, method: str, path: str, issued: int) -> str:
    message = "\x00".join((address, str(port), method, path, str(issued))).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_client(secret: str, address: str, port: int, method: str, path: str, now: float | None = None) -> str:
    """The ``X-StreamHub-Client`` value vouching that ``address:port`` asked ``method path``."""
    issued = int(time.time() if now is None else now)
    return f"{address} {port} {issued} {_signature(secret, address, port, method, path, issued)}"


def verify_client(secret: str, value: str, method: str, path: str, now: float | None = None) -> tuple[str, int] | None:
    """The client (address, port) of a signed header, or None if it is malformed, forged or stale."""
    try:
        address, port_text, issued_text, signature = value.split(" ")
        port, issued = int(port_text), int(issued_text)
    except ValueError:
        return None
    expected = _signature(secret, address, port, method, path, issued)
    if not hmac.compare_digest(expected, signature):
        return None
    if abs((time.time() if now is None else now) - issued) > SIGNATURE_TTL:
        return None
    return address, port


def client_port(request: web.Request) -> int | None:
    """The client's port a sibling (or the web-server front) vouched for (None: the request came straight
    from the client)."""
    return request.get(_PORT_KEY)


def as_client(request: web.Request, address: str, port: int) -> web.Request:
    """``request`` as made by ``address:port``, which a trusted party (a sibling, the front) vouched for."""
    forwarded = request.clone(remote=address)
    forwarded[_PORT_KEY] = port
    return forwarded


_PORT_KEY = "streamhub_sibling_client_port"


class SiblingProxy:
    """The middleware of one worker's media HTTP server (installed with `install`)."""

    def __init__(
        self,
        secret: str,
        locate: Locate,
        locate_worker: LocateWorker,
        worker_tag: str,
        *,
        read_timeout: float = 60.0,
    ) -> None:
        self.secret = secret
        self.locate = locate
        self.locate_worker = locate_worker
        self.worker_tag = worker_tag
        self.read_timeout = read_timeout
        self.proxied = 0  # requests answered by a sibling, since start
        self._server = None
        self._session: aiohttp.ClientSession | None = None
        self._cache: dict[StreamKey, tuple[float, str | None]] = {}
        self.audiences = AudienceBook()  # our streams' players on siblings (through their mirrors)

    def install(self, server) -> None:
        """Add the middleware and the audience route to ``server`` (a `MediaHttpServer`, before it starts)."""
        self._server = server
        server.app.middlewares.append(self.middleware)
        add_audience_route(server, self.audiences, self.secret)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _holder_base(self, key: StreamKey) -> str | None:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < LOCATE_CACHE_SECONDS:
            return hit[1]
        try:
            holder = await self.locate(key)
        except Exception:  # noqa: BLE001 - a database hiccup: answered here (not found) rather than failing
            logger.exception("locating the holder of %s failed", key)
            holder = None
        base = holder.http_base if holder is not None else None
        if len(self._cache) > 10000:
            self._cache.clear()
        if base is not None:  # (not "nobody": a stream that just started on a sibling is found at once)
            self._cache[key] = (now, base)
        return base

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        signed = request.headers.get(CLIENT_HEADER)
        if signed is not None:
            client = verify_client(self.secret, signed, request.method, request.path_qs)
            if client is None:
                logger.info("media HTTP: unsigned or stale %s from %s ignored", CLIENT_HEADER, request.remote)
                return await handler(request)
            return await handler(as_client(request, *client))  # never proxied twice
        route = request.match_info.route.name
        base = target = None
        if route in SESSION_ROUTES:
            tag, dot, _ = request.match_info.get("session_id", "").partition(".")
            if dot and tag != self.worker_tag:
                base = await self.locate_worker(tag)
        elif route in STREAM_ROUTES and request.method != "OPTIONS":
            target = await self._server.resolve_stream(request)
            local = target.stream if target is not None else None
            if target is not None and (local is None or getattr(local, "origin", None) is not None):
                base = await self._holder_base(target.key)
        if base is None:
            return await handler(request)
        try:
            return await self._forward(request, base)
        except (aiohttp.ClientError, TimeoutError) as error:
            # The sibling died or restarts: answered here (mostly "not found"), as for any unknown stream.
            logger.info("media HTTP: sibling %s did not answer %s: %r", base, request.path, error)
            if target is not None:
                self._cache.pop(target.key, None)
            return await handler(request)

    def client(self) -> aiohttp.ClientSession:
        """The HTTP client to the siblings (connections kept alive and reused)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
            timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=self.read_timeout)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)
        return self._session

    async def _forward(self, request: web.Request, base: str) -> web.StreamResponse:
        headers = {name: value for name, value in request.headers.items() if name.lower() not in _HOP_HEADERS}
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        port = int(peer[1]) if isinstance(peer, tuple) and len(peer) >= 2 else 0
        headers[CLIENT_HEADER] = sign_client(self.secret, request.remote or "", port, request.method, request.path_qs)
        body = None
        if request.method in ("POST", "PATCH", "PUT"):
            async with asyncio.timeout(10):
                body = await request.content.read(MAX_BODY + 1)
            if len(body) > MAX_BODY:
                raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(body))
        async with self.client().request(
            request.method, base + request.path_qs, headers=headers, data=body, allow_redirects=False
        ) as answer:
            out_headers = {n: v for n, v in answer.headers.items() if n.lower() not in _HOP_HEADERS}
            length = answer.content_length
            if request.method != "HEAD" and length is not None and length > STREAM_ANSWERS_FROM:
                self.proxied += 1
                return await self._pass_on(request, answer, out_headers, length)
            data = await answer.read()
        self.proxied += 1
        return web.Response(status=answer.status, body=data if request.method != "HEAD" else None, headers=out_headers)

    @staticmethod
    async def _pass_on(
        request: web.Request, answer: aiohttp.ClientResponse, headers: dict[str, str], length: int
    ) -> web.StreamResponse:
        """Send the holder's (long) answer on piece by piece, as it comes. Once its headers are sent it can
        only be cut short: a holder that fails now closes the client's connection."""
        response = web.StreamResponse(status=answer.status, headers=headers)
        response.content_length = length
        await response.prepare(request)
        try:
            async for piece in answer.content.iter_chunked(STREAM_ANSWERS_FROM):
                await response.write(piece)
        except (aiohttp.ClientError, TimeoutError) as error:
            logger.info("media HTTP: sibling's answer to %s cut short: %r", request.path, error)
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        return response


# --- audiences of mirrors: what a worker's players of a sibling's stream add to its counters -------

AUDIENCE_PATH = "/_streamhub/siblings/audience"
AUDIENCE_HEADER = "X-StreamHub-Signature"


def _body_signature(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), b"audience\x00" + body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class SiblingAudience:
    """One sibling's players of one of our streams (through its mirror), as of ``received``."""

    connections: dict[str, int]
    bytes_out: int
    received: float


class AudienceBook:
    """The holder's side: the latest audience each sibling reported per stream, forgotten after ``ttl`` s."""

    def __init__(self, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._reports: dict[StreamKey, dict[str, SiblingAudience]] = {}

    def report(self, key: StreamKey, sibling: str, connections: dict[str, int], bytes_out: int) -> None:
        self._reports.setdefault(key, {})[sibling] = SiblingAudience(dict(connections), bytes_out, self.clock())

    def of(self, key: StreamKey) -> list[SiblingAudience]:
        reports = self._reports.get(key, {})
        now = self.clock()
        for sibling in [s for s, audience in reports.items() if now - audience.received > self.ttl]:
            del reports[sibling]
        if not reports:
            self._reports.pop(key, None)
        return list(reports.values())

    def viewers_added(self, key: StreamKey) -> int:
        """What the siblings' players of ``key`` add to our viewer count: each mirror's pull (one RTMP
        connection here) replaced by the players it serves."""
        return sum(sum(audience.connections.values()) - 1 for audience in self.of(key))

    def merged(self, key: StreamKey, connections: dict[str, int], bytes_out: int) -> tuple[dict[str, int], int]:
        """Our own ``connections`` and ``bytes_out`` of ``key`` plus the siblings' players. Each
        mirror's pull is one RTMP connection here: it is replaced by the players it serves."""
        total, sent = dict(connections), bytes_out
        for audience in self.of(key):
            total["rtmp"] = max(0, total.get("rtmp", 0) - 1)
            for protocol, count in audience.connections.items():
                total[protocol] = total.get(protocol, 0) + count
            sent += audience.bytes_out
        return total, sent


def add_audience_route(server, book: AudienceBook, secret: str) -> None:
    """The holder's route siblings report their mirrors' audiences to (signed bodies only)."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.content.read(MAX_BODY + 1)
        signature = request.headers.get(AUDIENCE_HEADER, "")
        if len(body) > MAX_BODY or not hmac.compare_digest(signature, _body_signature(secret, body)):
            raise web.HTTPForbidden(text="not a sibling\n")
        try:
            report = json.loads(body)
            if abs(time.time() - float(report["sent_at"])) > SIGNATURE_TTL:
                raise web.HTTPForbidden(text="stale report\n")
            for item in report["streams"]:
                key = StreamKey(str(item["vhost"]), str(item["app"]), str(item["name"]))
                connections = {str(k): int(v) for k, v in dict(item["connections"]).items()}
                book.report(key, str(report["sibling"]), connections, int(item["bytes_out"]))
        except (ValueError, KeyError, TypeError) as error:
            raise web.HTTPBadRequest(text=f"bad report: {error}\n") from None
        return web.Response(status=204)

    server.add_route("POST", AUDIENCE_PATH, handle, name="sibling_audience")


async def report_audiences(proxy: SiblingProxy, sibling: str, mirrors: list) -> None:
    """Tell each holder what our players of its streams (``mirrors``: `LiveStream`s with an origin)
    took; a holder that does not answer hears again next time."""
    by_base: dict[str, list] = {}
    for stream in mirrors:
        base = await proxy._holder_base(stream.key)
        if base is not None:
            by_base.setdefault(base, []).append(stream)
    for base, streams in by_base.items():
        items = [
            {
                **dict(zip(("vhost", "app", "name"), stream.key, strict=True)),
                "connections": dict(stream.counters.connections),
                "bytes_out": stream.counters.total_bytes_out,
            }
            for stream in streams
        ]
        body = json.dumps({"sibling": sibling, "sent_at": time.time(), "streams": items}).encode()
        headers = {AUDIENCE_HEADER: _body_signature(proxy.secret, body), "Content-Type": "application/json"}
        try:
            async with proxy.client().post(base + AUDIENCE_PATH, data=body, headers=headers) as answer:
                if answer.status != 204:
                    logger.info("sibling %s refused our audience report: %s", base, answer.status)
        except (aiohttp.ClientError, TimeoutError) as error:
            logger.info("sibling %s did not take our audience report: %r", base, error)
