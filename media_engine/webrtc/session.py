"""WHIP and WHEP sessions on this node: one peer connection each, answering the client's offer.

A `WhipSession` publishes what it receives as a live stream (`WebRtcIngest`); a `WhepSession`
sends a live stream's packets (`WhepFanout`). Both end on DELETE, when the peer connection fails
or closes, when ICE does not connect within ``connect_timeout``, or when the stream is stopped or
ends. ``on_closed`` tells the owner.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
from collections.abc import Callable

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCSessionDescription
from aiortc.exceptions import OperationError
from aiortc.sdp import candidate_from_sdp

from media_engine.control import HeldClaim
from media_engine.registry import LiveStream, StreamKey, StreamRegistry
from media_engine.webrtc.fanout import WhepFanout, WhepViewer
from media_engine.webrtc.ice import IcePolicy, use_policy
from media_engine.webrtc.ingest import WebRtcIngest

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 30.0


class SessionError(Exception):
    """The offer cannot be answered; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class State(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


def offered_codecs(sdp: str, kind: str) -> set[str]:
    """The codec names (upper case) the SDP offers in its ``kind`` m-sections."""
    names: set[str] = set()
    current = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            current = line[2:].split(" ", 1)[0]
        elif current == kind and line.startswith("a=rtpmap:"):
            try:
                names.add(line.split(" ", 1)[1].split("/", 1)[0].upper())
            except IndexError:
                continue
    return names


def offered_kinds(sdp: str) -> list[str]:
    return [line[2:].split(" ", 1)[0] for line in sdp.splitlines() if line.startswith("m=")]


def _prefer(transceiver, capabilities, names: tuple[str, ...]) -> None:
    """Answer with the first of ``names`` the offer has (and its RTX), if any."""
    codecs = [codec for codec in capabilities.codecs if codec.mimeType.split("/")[1].upper() in names]
    for name in names:
        chosen = [c for c in codecs if c.mimeType.split("/")[1].upper() == name]
        if chosen:
            rtx = [c for c in capabilities.codecs if c.mimeType.lower().endswith("/rtx")]
            transceiver.setCodecPreferences(chosen + rtx)
            return


class WebRtcSession:
    direction = ""

    def __init__(self, policy: IcePolicy, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.id = secrets.token_urlsafe(16)
        self.policy = policy
        self.connect_timeout = connect_timeout
        self.pc = RTCPeerConnection(policy.rtc_configuration())
        self.state = State.NEW
        self.remote_address = ""
        self.on_closed: Callable[[WebRtcSession], None] | None = None
        self._close_task: asyncio.Task | None = None
        self._timeout: asyncio.TimerHandle | None = None
        self.pc.on("connectionstatechange", self._on_connection_state)

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            logger.info("%s %s: %s -> %s", self.direction, self.id[:8], self.state.value, state.value)
            self.state = state

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self._set_state(State.CONNECTED)
            if self._timeout is not None:
                self._timeout.cancel()
        elif state in ("failed", "closed"):
            self.close_soon()

    async def _answer(self, offer_sdp: str) -> str:
        with use_policy(self.policy):
            self._prepare(offered_kinds(offer_sdp))
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            except OperationError as error:  # no codec in common
                raise SessionError(400, f"{error}\n") from None
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._set_state(State.CONNECTING)
        self._timeout = asyncio.get_running_loop().call_later(self.connect_timeout, self._connect_timed_out)
        return self.pc.localDescription.sdp

    def _prepare(self, kinds: list[str]) -> None:
        """Before the offer is applied: transceivers (with codec preferences) for its m-sections.
        aiortc applies codec preferences when it takes the offer, so they must exist by then."""

    def _connect_timed_out(self) -> None:
        if self.state is not State.CONNECTED:
            logger.info("%s %s: ICE did not connect in %ss", self.direction, self.id[:8], self.connect_timeout)
            self.close_soon()

    async def add_candidates(self, fragment: str) -> None:
        """Trickle ICE (RFC 8840 SDP fragment): the client's further candidates."""
        mid = None
        for line in fragment.splitlines():
            line = line.strip()
            if line.startswith("a=mid:"):
                mid = line[6:]
            elif line.startswith("a=candidate:"):
                try:
                    candidate = candidate_from_sdp(line[len("a=candidate:") :])
                except (ValueError, IndexError, AssertionError):  # aiortc's parser asserts the field count
                    raise SessionError(400, f"malformed candidate line: {line}") from None
                transceivers = self.pc.getTransceivers()
                candidate.sdpMid = mid if mid is not None else (transceivers[0].mid if transceivers else "0")
                await self.pc.addIceCandidate(candidate)

    def close_soon(self) -> None:
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self.close())

    async def close(self) -> None:
        if self.state is State.CLOSED:
            return
        self._set_state(State.CLOSED)
        if self._timeout is not None:
            self._timeout.cancel()
        try:
            await self._release()
        finally:
            await self.pc.close()
            if self.on_closed is not None:
                self.on_closed(self)

    async def _release(self) -> None:
        """What the session holds beyond the peer connection."""


class WhipSession(WebRtcSession):
    """A WHIP publisher: its tracks become the live stream ``key``.

    The stream is opened only once the offer has been answered: an offer refused (no usable codec,
    unparsable SDP) leaves no live stream behind, so no database row and no started/ended event.
    ``claim`` (the key's publish claim, taken before the session) is released when the session ends.
    """

    direction = "whip"

    def __init__(
        self,
        registry: StreamRegistry,
        key: StreamKey,
        policy: IcePolicy,
        keyframe_interval: float = 2.0,
        remote_address: str = "",
        claim: HeldClaim | None = None,
    ) -> None:
        super().__init__(policy)
        self.registry = registry
        self.key = key
        self.claim = claim
        self.remote_address = remote_address
        self.stream: LiveStream | None = None
        self.ingest: WebRtcIngest | None = None
        self.keyframe_interval = keyframe_interval

    async def start(self, offer_sdp: str) -> str:
        """Answer the offer, then open the stream (StreamAlreadyLive if it is live meanwhile)."""
        kinds = [kind for kind in offered_kinds(offer_sdp) if kind in ("audio", "video")]
        if not kinds:
            raise SessionError(400, "the offer has no audio or video\n")
        video = offered_codecs(offer_sdp, "video")
        if "video" in kinds and not video & {"H264", "VP8"}:
            raise SessionError(400, "the offer's video has neither H264 nor VP8\n")
        if "audio" in kinds and "OPUS" not in offered_codecs(offer_sdp, "audio"):
            raise SessionError(400, "the offer's audio is not Opus\n")
        self.video_codecs = ("H264",) if "H264" in video else ("VP8",)
        received: list[tuple] = []  # tracks announced while the offer is applied, before the stream exists

        @self.pc.on("track")
        def on_track(track) -> None:
            receiver = next((t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track), None)
            if self.ingest is None:
                received.append((track, receiver))
            else:
                self.ingest.add_track(track, receiver)

        answer = await self._answer(offer_sdp)
        self.stream = self.registry.open(self.key, "webrtc", self.remote_address)
        self.stream.set_stop_handler(self.close_soon)
        self.ingest = WebRtcIngest(self.stream, set(kinds), self.keyframe_interval)
        for track, receiver in received:
            self.ingest.add_track(track, receiver)
        return answer

    def _prepare(self, kinds: list[str]) -> None:
        for kind in kinds:
            if kind not in ("audio", "video"):
                continue
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            capabilities = RTCRtpReceiver.getCapabilities(kind)
            # H.264 is relayed as it comes; VP8 only if the browser has no H.264.
            _prefer(transceiver, capabilities, self.video_codecs if kind == "video" else ("OPUS",))

    async def _release(self) -> None:
        try:
            if self.ingest is not None:
                await self.ingest.close()
            if self.stream is not None:
                self.registry.close(self.stream)
        finally:
            if self.claim is not None:
                self.claim.release()  # after the stream is closed here: a new publish may take the key


class WhepSession(WebRtcSession):
    """A WHEP viewer of ``fanout``'s stream."""

    direction = "whep"

    def __init__(self, fanout: WhepFanout, policy: IcePolicy) -> None:
        super().__init__(policy)
        self.fanout = fanout
        self.stream = fanout.stream
        self.viewer: WhepViewer | None = None
        self._counted = False

    async def start(self, offer_sdp: str) -> str:
        kinds = offered_kinds(offer_sdp)
        send_video = "video" in kinds and self.fanout.video_codec == "h264"
        send_audio = "audio" in kinds and self.fanout.audio_codec == "aac"
        if self.fanout.video_codec not in (None, "h264"):
            raise SessionError(415, f"{self.fanout.video_codec} video cannot be played over WebRTC\n")
        if send_video and "H264" not in offered_codecs(offer_sdp, "video"):
            raise SessionError(400, "the offer's video has no H264\n")
        if not (send_video or send_audio):
            raise SessionError(400, "the offer asks for no track this stream has\n")
        self.viewer = WhepViewer(video=send_video, audio=send_audio)
        self.fanout.attach(self.viewer)
        self.stream.counters.connection_opened("webrtc")
        self._counted = True
        return await self._answer(offer_sdp)

    def _prepare(self, kinds: list[str]) -> None:
        assert self.viewer is not None
        for kind in kinds:
            track = self.viewer.video if kind == "video" else self.viewer.audio if kind == "audio" else None
            if track is None or track in [t.sender.track for t in self.pc.getTransceivers()]:
                continue
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            capabilities = RTCRtpSender.getCapabilities(kind)
            _prefer(transceiver, capabilities, ("H264",) if kind == "video" else ("OPUS",))

    async def _release(self) -> None:
        if self.viewer is not None:
            self.fanout.detach(self.viewer)
            self.viewer.finish()
        if self._counted:
            self.stream.counters.connection_closed("webrtc")
            self._counted = False
