"""WebRTC relays between nodes: pull another node's stream from its WHEP URL into a local stream,
or push a local stream to another node's WHIP URL. This node is the WHEP/WHIP client (aiortc); the
media is relayed as for local sessions (H.264 as is, Opus↔AAC on threads).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCSessionDescription

from media_engine.control import HeldClaim
from media_engine.outbound import check_request_url, guarded_session
from media_engine.registry import LiveStream, StreamRegistry
from media_engine.webrtc.fanout import WhepFanout, WhepViewer
from media_engine.webrtc.ice import IcePolicy, use_policy
from media_engine.webrtc.ingest import WebRtcIngest
from media_engine.webrtc.session import offered_kinds

logger = logging.getLogger(__name__)

SIGNALLING_TIMEOUT = 15.0
CONNECT_TIMEOUT = 30.0


class RelayStatus(enum.Enum):
    PENDING = "PENDING"
    PUBLISHING = "PUBLISHING"  # connected: media flows
    FAILED = "FAILED"
    STOPPED = "STOPPED"


StatusListener = Callable[["WebRtcRelay", RelayStatus, str], None]


def signalling_url(url: str, direction: str) -> str:
    """``url`` with ``direction=whip|whep`` in its query; ValueError unless it is an http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) WHIP/WHEP URL: {url!r}")
    query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("direction="))
    query = f"{query}&direction={direction}" if query else f"direction={direction}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _prefer(transceiver, capabilities, name: str) -> None:
    chosen = [c for c in capabilities.codecs if c.mimeType.split("/")[1].upper() == name]
    rtx = [c for c in capabilities.codecs if c.mimeType.lower().endswith("/rtx")]
    transceiver.setCodecPreferences(chosen + (rtx if chosen and name != "OPUS" else []))


class WebRtcRelay:
    """One pull or push; `start()` negotiates (raising on failure), `stop()` ends it and the remote session."""

    direction = ""

    def __init__(self, relay_id: str, url: str, policy: IcePolicy, on_status: StatusListener | None = None) -> None:
        self.id = relay_id
        self.url = signalling_url(url, "whep" if self.direction == "pull" else "whip")
        self.policy = policy
        self.on_status = on_status
        self.status = RelayStatus.PENDING
        self.error = ""
        self.pc = RTCPeerConnection(policy.rtc_configuration())
        self.location: str | None = None
        self._stopping = False
        self._timeout: asyncio.TimerHandle | None = None
        self.pc.on("connectionstatechange", self._on_connection_state)

    def _set_status(self, status: RelayStatus, error: str = "") -> None:
        if status is self.status and error == self.error:
            return
        logger.info("webrtc %s %s: %s %s", self.direction, self.id, status.value, error)
        self.status, self.error = status, error
        if self.on_status is not None:
            self.on_status(self, status, error)

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            if self._timeout is not None:
                self._timeout.cancel()
            self._set_status(RelayStatus.PUBLISHING)
        elif state in ("failed", "closed") and not self._stopping:
            asyncio.get_running_loop().create_task(self.stop(RelayStatus.FAILED, f"peer connection {state}"))

    def _add_transceivers(self) -> None:
        raise NotImplementedError

    async def _negotiate(self) -> None:
        with use_policy(self.policy):
            self._add_transceivers()
            await self.pc.setLocalDescription(await self.pc.createOffer())
        timeout = aiohttp.ClientTimeout(total=SIGNALLING_TIMEOUT)
        # Only where the outbound policy allows (the addresses connected to are the ones checked); a
        # WHIP/WHEP answer is 201, never a redirect to follow.
        check_request_url(self.url)
        async with guarded_session(timeout=timeout) as http:
            headers = {"Content-Type": "application/sdp"}
            sdp = self.pc.localDescription.sdp
            async with http.post(self.url, data=sdp, headers=headers, allow_redirects=False) as response:
                answer = await response.text()
                if response.status != 201:
                    raise ConnectionError(f"{self.url} answered {response.status}: {answer.strip()[:200]}")
                location = response.headers.get("Location")
        self.location = urljoin(self.url, location) if location else None
        with use_policy(self.policy):
            await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        self._timeout = asyncio.get_running_loop().call_later(CONNECT_TIMEOUT, self._connect_timed_out)

    def _connect_timed_out(self) -> None:
        if self.status is RelayStatus.PENDING:
            asyncio.get_running_loop().create_task(self.stop(RelayStatus.FAILED, "ICE did not connect"))

    async def start(self) -> None:
        try:
            await self._negotiate()
        except (ConnectionError, aiohttp.ClientError, TimeoutError, ValueError) as error:
            await self.stop(RelayStatus.FAILED, str(error) or type(error).__name__)
            raise

    async def stop(self, status: RelayStatus = RelayStatus.STOPPED, error: str = "") -> None:
        if self._stopping:
            return
        self._stopping = True
        if self._timeout is not None:
            self._timeout.cancel()
        if self.location is not None:
            try:
                timeout = aiohttp.ClientTimeout(total=5)
                check_request_url(self.location)
                async with guarded_session(timeout=timeout) as http:
                    async with http.delete(self.location, allow_redirects=False):
                        pass
            except (aiohttp.ClientError, TimeoutError, ValueError) as failure:  # ValueError: OutboundRefused
                logger.info("webrtc %s %s: ending the remote session failed: %r", self.direction, self.id, failure)
        await self._release()
        await self.pc.close()
        self._set_status(status, error)

    async def _release(self) -> None:
        pass


class WhepPull(WebRtcRelay):
    """Another node's stream, played over WHEP, published here as ``stream``."""

    direction = "pull"

    def __init__(
        self,
        relay_id: str,
        url: str,
        registry: StreamRegistry,
        stream: LiveStream,
        policy: IcePolicy,
        on_status: StatusListener | None = None,
        keyframe_interval: float = 0,
        claim: HeldClaim | None = None,
    ) -> None:
        super().__init__(relay_id, url, policy, on_status)
        self.registry = registry
        self.stream = stream
        self.claim = claim  # the key's publish claim, released when the relay ends
        self.ingest = WebRtcIngest(stream, {"audio", "video"}, keyframe_interval)
        stream.set_stop_handler(lambda: asyncio.get_running_loop().create_task(self.stop()))

        @self.pc.on("track")
        def on_track(track) -> None:
            receiver = next((t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track), None)
            self.ingest.add_track(track, receiver)

    def _add_transceivers(self) -> None:
        for kind, codec in (("video", "H264"), ("audio", "OPUS")):
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            _prefer(transceiver, RTCRtpReceiver.getCapabilities(kind), codec)

    async def _negotiate(self) -> None:
        await super()._negotiate()
        # The remote stream may lack a kind: do not wait for its configuration.
        self.ingest.expected = set(offered_kinds(self.pc.remoteDescription.sdp)) & {"audio", "video"}
        for transceiver in self.pc.getTransceivers():
            if transceiver.currentDirection in ("inactive", None):
                self.ingest.expected.discard(transceiver.kind)

    async def _release(self) -> None:
        try:
            await self.ingest.close()
            self.registry.close(self.stream)
        finally:
            if self.claim is not None:
                self.claim.release()


class WhipPush(WebRtcRelay):
    """A local stream published to another node over WHIP."""

    direction = "push"

    def __init__(
        self, relay_id: str, url: str, fanout: WhepFanout, policy: IcePolicy, on_status: StatusListener | None = None
    ) -> None:
        super().__init__(relay_id, url, policy, on_status)
        self.fanout = fanout
        self.stream = fanout.stream
        self.viewer = WhepViewer(video=fanout.video_codec == "h264", audio=fanout.audio_codec == "aac")
        if self.viewer.video is None and self.viewer.audio is None:
            raise ValueError("the stream has neither H.264 video nor AAC audio to push")
        fanout.attach(self.viewer)

    def _add_transceivers(self) -> None:
        for track, codec in ((self.viewer.video, "H264"), (self.viewer.audio, "OPUS")):
            if track is not None:
                transceiver = self.pc.addTransceiver(track, direction="sendonly")
                _prefer(transceiver, RTCRtpSender.getCapabilities(track.kind), codec)

    async def _release(self) -> None:
        self.fanout.detach(self.viewer)
        self.viewer.finish()
