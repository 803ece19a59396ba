"""WHIP/WHEP signalling on the media HTTP port, and the sessions of this node.

Routes (added to `MediaHttpServer` by `WebRtcService.add_routes`):

- ``POST /{app}/{stream}?direction=whip`` (body: SDP offer, ``application/sdp``): publish. ``201``
  with the SDP answer and ``Location: /{app}/{stream}/webrtc-session/{id}``; ``409`` if the stream
  is already live (here, or claimed by another node or worker process: `claim_publish`), ``404`` for
  an unknown application.
- ``POST /{app}/{stream}?direction=whep``: play a live stream (``404`` if it is not live here).
- ``PATCH`` the Location (``application/trickle-ice-sdpfrag``): the client's further ICE candidates
  (``204``). ``DELETE`` the Location: end the session (``200``).
- ``GET /`` the operator page (publish the camera, play a stream), ``GET /webrtc/config`` its ICE
  servers, ``GET /webrtc/static/{file}`` its script.

Errors are plain text with their status, as the other routes of this port answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from media_engine.admission import PLAY, PUBLISH
from media_engine.control import ControlPlane, claim_or_refuse
from media_engine.registry import LiveStream, StreamAlreadyLive, StreamKey, StreamRegistry
from media_engine.webrtc import ice, passthrough
from media_engine.webrtc.fanout import WhepFanout
from media_engine.webrtc.ice import IcePolicy
from media_engine.webrtc.relay import RelayStatus, StatusListener, WebRtcRelay, WhepPull, WhipPush
from media_engine.webrtc.session import SessionError, WebRtcSession, WhepSession, WhipSession

S = TypeVar("S", bound=WebRtcSession)

logger = logging.getLogger(__name__)

SDP_TYPE = "application/sdp"
TRICKLE_TYPE = "application/trickle-ice-sdpfrag"
MAX_SDP_BYTES = 64 * 1024
CONFIG_WAIT = 5.0  # seconds a WHEP offer waits for a fresh stream's codec configuration
STATIC = Path(__file__).with_name("static")
STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
EXPOSED_HEADERS = {"Access-Control-Expose-Headers": "Location, ETag, Link"}


@dataclass(frozen=True)
class WebRtcSettings:
    """``keyframe_interval``: seconds between keyframe requests to WHIP publishers (0: never)."""

    ice: IcePolicy = field(default_factory=IcePolicy)
    keyframe_interval: float = 2.0


class WebRtcService:
    """This node's WHIP and WHEP sessions, and one `WhepFanout` per stream that has viewers."""

    def __init__(self, registry: StreamRegistry, control: ControlPlane, settings: WebRtcSettings | None = None) -> None:
        ice.install()
        passthrough.install()
        self.registry = registry
        self.control = control
        self.settings = settings or WebRtcSettings()
        self.sessions: dict[str, WebRtcSession] = {}
        self.relays: dict[str, WebRtcRelay] = {}
        self._fanouts: dict[LiveStream, WhepFanout] = {}
        # Worker processes behind one port tag their session ids ("<tag>.<token>") so that a PATCH or
        # DELETE landing on a sibling is proxied here (media_engine.http.siblings).
        self.session_tag = ""
        registry.on_ended(self._stream_ended, mirrors=True)

    # --- sessions --------------------------------------------------------------------------------

    def count(self, direction: str) -> int:
        return sum(1 for session in self.sessions.values() if session.direction == direction)

    def _register(self, session: WebRtcSession) -> None:
        if self.session_tag and not session.id.startswith(f"{self.session_tag}."):
            session.id = f"{self.session_tag}.{session.id}"
        self.sessions[session.id] = session
        session.on_closed = self._session_closed

    def _session_closed(self, session: WebRtcSession) -> None:
        self.sessions.pop(session.id, None)
        if isinstance(session, WhepSession):
            fanout = self._fanouts.get(session.stream)
            if fanout is not None and not fanout.viewers:
                fanout.close()
                del self._fanouts[session.stream]

    def _stream_ended(self, stream: LiveStream) -> None:
        fanout = self._fanouts.pop(stream, None)
        if fanout is not None:
            fanout.close()
        for session in list(self.sessions.values()):
            if getattr(session, "stream", None) is stream:
                session.close_soon()
        for relay in list(self.relays.values()):
            if relay.stream is stream:
                asyncio.get_running_loop().create_task(relay.stop(RelayStatus.STOPPED, "the stream ended"))

    async def publish(self, key: StreamKey, offer_sdp: str, remote_address: str = "") -> WhipSession:
        """Answer a WHIP offer for ``key``, live once answered. Raises SessionError or ValueError (an
        offer refused: nothing was opened) and StreamAlreadyLive (live here, or another node's claim:
        refused before any work on the offer)."""
        claim = await claim_or_refuse(self.control, key, f"whip {remote_address}")
        with claim.released_on_failure():
            session = WhipSession(
                self.registry, key, self.settings.ice, self.settings.keyframe_interval, remote_address, claim
            )
        return await self._start(session, offer_sdp)  # (a session that fails to start releases its claim)

    async def play(self, stream: LiveStream, offer_sdp: str) -> WhepSession:
        # A publisher that just connected may not have sent its codec configuration yet.
        deadline = asyncio.get_running_loop().time() + CONFIG_WAIT
        while stream.video_config is None and stream.audio_config is None and not stream.ended:
            if asyncio.get_running_loop().time() > deadline:
                raise SessionError(404, "the stream has no audio or video yet\n")
            await asyncio.sleep(0.05)
        session = WhepSession(self._fanout(stream), self.settings.ice)
        return await self._start(session, offer_sdp)

    async def _start(self, session: S, offer_sdp: str) -> S:
        """Register ``session`` and answer its offer; a session that fails to start is closed."""
        self._register(session)
        try:
            await session.start(offer_sdp)
        except BaseException:
            await session.close()
            raise
        return session

    # --- relays to and from other nodes ----------------------------------------------------------

    def _fanout(self, stream: LiveStream) -> WhepFanout:
        fanout = self._fanouts.get(stream)
        if fanout is None:
            fanout = self._fanouts[stream] = WhepFanout(stream)
        return fanout

    def _track_relay(self, relay: WebRtcRelay, on_status: StatusListener | None) -> None:
        self.relays[relay.id] = relay

        def status_changed(relay: WebRtcRelay, status: RelayStatus, error: str) -> None:
            if status in (RelayStatus.FAILED, RelayStatus.STOPPED):
                self.relays.pop(relay.id, None)
            if on_status is not None:
                on_status(relay, status, error)

        relay.on_status = status_changed

    async def start_pull(
        self, relay_id: str, key: StreamKey, url: str, on_status: StatusListener | None = None
    ) -> WhepPull:
        """Publish the stream at another node's WHEP ``url`` here as ``key``. Raises StreamAlreadyLive
        (live here, or another node's claim), ValueError (bad URL), ConnectionError (the other node
        refused or cannot be reached)."""
        claim = await claim_or_refuse(self.control, key, f"webrtc pull {relay_id}")
        with claim.released_on_failure():
            stream = self.registry.open(key, "webrtc", urlsplit(url).hostname or "")
            try:
                relay = WhepPull(relay_id, url, self.registry, stream, self.settings.ice, claim=claim)
            except BaseException:
                self.registry.close(stream)
                raise
        self._track_relay(relay, on_status)
        await relay.start()
        return relay

    async def start_push(
        self, relay_id: str, key: StreamKey, url: str, on_status: StatusListener | None = None
    ) -> WhipPush:
        """Publish the live stream ``key`` to another node's WHIP ``url``. Raises LookupError if it is
        not live here, ValueError (bad URL, nothing to send), ConnectionError (refused, unreachable)."""
        stream = self.registry.get(key)
        if stream is None:
            raise LookupError(f"{key} is not live on this node")
        relay = WhipPush(relay_id, url, self._fanout(stream), self.settings.ice)
        self._track_relay(relay, on_status)
        await relay.start()
        return relay

    async def stop_relay(self, relay_id: str) -> bool:
        relay = self.relays.get(relay_id)
        if relay is None:
            return False
        await relay.stop()
        return True

    async def close(self) -> None:
        for relay in list(self.relays.values()):
            await relay.stop()
        for session in list(self.sessions.values()):
            await session.close()
        for fanout in self._fanouts.values():
            fanout.close()
        self._fanouts.clear()

    # --- HTTP ------------------------------------------------------------------------------------

    def add_routes(self, server) -> None:
        """Add the signalling routes and the operator page to a `MediaHttpServer` before it starts."""
        self.server = server
        server.add_route("POST", "/{app}/{stream}", self.handle_offer, name="webrtc_offer")
        location = "/{app}/{stream}/webrtc-session/{session_id}"
        server.add_route("PATCH", location, self.handle_patch, name="webrtc_session_patch")
        server.add_route("DELETE", location, self.handle_delete, name="webrtc_session_delete")
        server.add_route("GET", "/", self.handle_page, name="webrtc_page")
        server.add_route("GET", "/webrtc/config", self.handle_config, name="webrtc_config")
        server.add_route("GET", "/webrtc/static/{file}", self.handle_static, name="webrtc_static")

    async def _read_sdp(self, request: web.Request, content_type: str) -> str:
        if request.content_type != content_type:
            raise web.HTTPUnsupportedMediaType(text=f"the body must be {content_type}\n")
        if request.content_length is not None and request.content_length > MAX_SDP_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_SDP_BYTES, actual_size=request.content_length)
        # The whole body (read() gives what has arrived so far), in the time a header gets: a client
        # that sends its headers and then trickles or withholds the body does not hold the connection.
        body = bytearray()
        try:
            async with asyncio.timeout(self.server.limits.header_timeout):
                while len(body) <= MAX_SDP_BYTES and (
                    chunk := await request.content.read(MAX_SDP_BYTES + 1 - len(body))
                ):
                    body += chunk
        except TimeoutError:
            raise web.HTTPRequestTimeout(text="the body did not come in time\n") from None
        if len(body) > MAX_SDP_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_SDP_BYTES, actual_size=len(body))
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise web.HTTPBadRequest(text="the SDP is not UTF-8\n") from None

    async def handle_offer(self, request: web.Request) -> web.StreamResponse:
        direction = request.query.get("direction", "")
        if direction not in ("whip", "whep"):
            raise web.HTTPBadRequest(text="direction must be whip or whep\n")
        offer = await self._read_sdp(request, SDP_TYPE)
        if "m=" not in offer or "v=0" not in offer:
            raise web.HTTPBadRequest(text="the body is not an SDP offer\n")
        target = await self.server.resolve_stream(request)
        if target is None:
            raise web.HTTPNotFound(text="application not found\n")
        await self.server.check_access(request, target, PUBLISH if direction == "whip" else PLAY, "webrtc")
        try:
            if direction == "whip":
                if target.stream is not None:  # before any work on the offer
                    raise web.HTTPConflict(text="stream is already live\n")
                try:
                    session = await self.publish(target.key, offer, request.remote or "")
                except StreamAlreadyLive:
                    raise web.HTTPConflict(text="stream is already live\n") from None
            else:
                target = await self.server.with_remote(target)  # a stream of another node: mirrored
                if target.stream is None:
                    raise web.HTTPNotFound(text="stream not found\n")
                session = await self.play(target.stream, offer)
        except SessionError as error:
            raise _error(error) from None
        except ValueError as error:  # aiortc's SDP parser and negotiation
            raise web.HTTPBadRequest(text=f"unusable SDP offer: {error}\n") from None
        session.remote_address = request.remote or ""
        location = f"/{target.key.app}/{target.key.name}/webrtc-session/{session.id}"
        headers = {"Location": location, "ETag": f'"{session.id}"', **EXPOSED_HEADERS, **self._link_headers()}
        return web.Response(status=201, body=session.pc.localDescription.sdp, content_type=SDP_TYPE, headers=headers)

    def _link_headers(self) -> dict:
        links = []
        for server in self.settings.ice.ice_servers:
            for url in server.urls:
                link = f'<{url}>; rel="ice-server"'
                if server.username is not None:
                    link += f'; username="{server.username}"; credential="{server.credential or ""}"'
                links.append(link)
        return {"Link": ", ".join(links)} if links else {}

    def _session(self, request: web.Request) -> WebRtcSession:
        session = self.sessions.get(request.match_info["session_id"])
        if session is None:
            raise web.HTTPNotFound(text="session not found\n")
        return session

    async def handle_patch(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        fragment = await self._read_sdp(request, TRICKLE_TYPE)
        try:
            await session.add_candidates(fragment)
        except SessionError as error:
            raise _error(error) from None
        return web.Response(status=204, headers=EXPOSED_HEADERS)

    async def handle_delete(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        await session.close()
        return web.Response(status=200, text="session ended\n")

    async def handle_page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Content-Type": "text/html; charset=utf-8"})

    async def handle_config(self, request: web.Request) -> web.StreamResponse:
        servers = [server.public_dict() for server in self.settings.ice.ice_servers]
        return web.json_response({"iceServers": servers}, dumps=json.dumps)

    async def handle_static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        path = STATIC / name
        if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
            raise web.HTTPNotFound(text="file not found\n")
        return web.FileResponse(path, headers={"Content-Type": f"{STATIC_TYPES[path.suffix]}; charset=utf-8"})


def _error(error: SessionError) -> web.HTTPException:
    classes = {400: web.HTTPBadRequest, 404: web.HTTPNotFound, 409: web.HTTPConflict, 415: web.HTTPUnsupportedMediaType}
    return classes.get(error.status, web.HTTPBadRequest)(text=str(error))
