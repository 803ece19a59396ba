"""One live stream's packets in the form WHEP viewers send them, made once for all its viewers:
H.264 cut into RTP payloads (single NAL units, STAP-A, FU-A: aiortc's packetizer, parameter sets
before each keyframe, never re-encoded) and AAC transcoded to Opus on a thread. Each viewer has a
`PacketTrack` per kind whose frames go out as they are (see `install` and `rtp_send`), so per viewer
a frame costs only the RTP headers, SRTP and the sends.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiortc.clock
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpsender import RTCEncodedFrame, RTCRtpSender

from media_engine.codecs.h264 import parse_avc_config
from media_engine.packets import MediaPacket, TrackKind
from media_engine.registry import LiveStream
from media_engine.webrtc.h264 import split_avcc
from media_engine.webrtc.rtp_send import FrameSender, run_frame_sender
from media_engine.webrtc.transcode import AacToOpus, TranscoderThread

logger = logging.getLogger(__name__)

VIDEO_CLOCK_PER_MS = 90  # RTP video clock: 90 kHz


class PacketTrack(MediaStreamTrack):
    """A track of prepared frames (`RTCEncodedFrame`: RTP payloads and timestamp) for one viewer, sent
    as they are offered by the `FrameSender` aiortc's sender runs for it (see `install`). Video starts
    at a keyframe, and a viewer whose socket cannot take the stream skips to the next keyframe rather
    than slowing anyone."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._sender: FrameSender | None = None
        self._waiting_for_keyframe = kind == "video"
        self.packets_sent = 0
        self.bytes_sent = 0

    def attach_sender(self, sender: FrameSender) -> None:
        self._sender = sender

    def detach_sender(self, sender: FrameSender) -> None:
        if self._sender is sender:
            self._sender = None

    def offer(self, frame: RTCEncodedFrame, keyframe: bool = False, size: int = 0) -> None:
        sender = self._sender
        if sender is None or self.readyState != "live":
            return
        if self._waiting_for_keyframe:
            if not keyframe:
                return
            self._waiting_for_keyframe = False
        if sender.send(frame):
            self.packets_sent += 1
            self.bytes_sent += size
        else:
            self._waiting_for_keyframe = self.kind == "video"

    def finish(self) -> None:
        """The stream ended: the sender stops."""
        if self._sender is not None:
            self._sender.ended.set()
        else:
            self.stop()

    async def recv(self) -> RTCEncodedFrame:  # type: ignore[override]
        """Frames are pushed to the sender (`offer`), never pulled."""
        raise MediaStreamError


_aiortc_run_rtp = RTCRtpSender._run_rtp
_aiortc_retransmit = RTCRtpSender._retransmit


async def _run_rtp(self: RTCRtpSender, codec) -> None:
    """aiortc's sender loop, or for a `PacketTrack` the `FrameSender` its frames are pushed to."""
    track = self._RTCRtpSender__track  # type: ignore[attr-defined]
    if isinstance(track, PacketTrack):
        await run_frame_sender(self, track, codec.payloadType)
    else:
        await _aiortc_run_rtp(self, codec)


async def _retransmit(self: RTCRtpSender, sequence_number: int) -> None:
    frame_sender = getattr(self, "_frame_sender", None)
    if frame_sender is not None:
        await frame_sender.retransmit(sequence_number)
    else:
        await _aiortc_retransmit(self, sequence_number)


_NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900 (NTP's epoch) to 1970


def current_ntp_time() -> int:
    """aiortc's `clock.current_ntp_time` without datetime objects: a sender asks for it twice per RTP
    packet, and through datetime it was the largest cost of a WHEP viewer after SRTP and sendto."""
    now = time.time()
    seconds = int(now)
    return ((seconds + _NTP_UNIX_OFFSET) << 32) | int((now - seconds) * 4_294_967_296)


def install() -> None:
    """Make aiortc's senders of `PacketTrack`s send the frames offered, as they are, through a
    `FrameSender` (RTCP stays aiortc's), and read the NTP clock cheaply (idempotent)."""
    RTCRtpSender._run_rtp = _run_rtp  # type: ignore[method-assign]
    RTCRtpSender._retransmit = _retransmit  # type: ignore[method-assign]
    aiortc.clock.current_ntp_time = current_ntp_time


class WhepViewer:
    """The tracks of one WHEP session."""

    def __init__(self, video: bool, audio: bool) -> None:
        self.video = PacketTrack("video") if video else None
        self.audio = PacketTrack("audio") if audio else None

    def finish(self) -> None:
        for track in (self.video, self.audio):
            if track is not None:
                track.finish()


class WhepFanout:
    """Packets of ``stream`` converted once and offered to every attached viewer."""

    def __init__(self, stream: LiveStream) -> None:
        install()
        self.stream = stream
        self.loop = asyncio.get_running_loop()
        self.viewers: set[WhepViewer] = set()
        self._parameter_sets: list[bytes] = []
        self._nal_length_size = 4
        self._opus: TranscoderThread | None = None
        self._audio_config: bytes | None = None
        for config in (stream.video_config, stream.audio_config):
            if config is not None:
                self._on_config(config)
        stream.add_sink(self._on_packet)

    @property
    def video_codec(self) -> str | None:
        return self.stream.video_config.codec if self.stream.video_config is not None else None

    @property
    def audio_codec(self) -> str | None:
        return self.stream.audio_config.codec if self.stream.audio_config is not None else None

    def attach(self, viewer: WhepViewer) -> None:
        self.viewers.add(viewer)

    def detach(self, viewer: WhepViewer) -> None:
        self.viewers.discard(viewer)

    def close(self) -> None:
        self.stream.remove_sink(self._on_packet)
        if self._opus is not None:
            self._opus.close()
            self._opus = None
        for viewer in list(self.viewers):
            viewer.finish()
        self.viewers.clear()

    def _on_config(self, packet: MediaPacket) -> None:
        if packet.kind is TrackKind.VIDEO and packet.codec == "h264":
            try:
                avc = parse_avc_config(packet.payload)
            except ValueError as error:
                logger.debug("whep %s: unreadable AVC configuration: %s", self.stream.key, error)
                return
            self._parameter_sets = avc.sps + avc.pps
            self._nal_length_size = avc.nal_length_size
        elif packet.kind is TrackKind.AUDIO and packet.codec == "aac" and packet.payload != self._audio_config:
            self._audio_config = packet.payload
            if self._opus is not None:
                self._opus.close()
            self._opus = TranscoderThread(
                f"aac->opus {self.stream.key}", AacToOpus(packet.payload), self._on_opus, self.loop
            )

    def _on_packet(self, packet: MediaPacket) -> None:
        # Inline in the publisher's push: only cheap work here, the audio transcode is on a thread.
        if packet.config:
            self._on_config(packet)
            return
        if not self.viewers:
            return
        if packet.kind is TrackKind.VIDEO and packet.codec == "h264":
            try:
                nals = split_avcc(packet.payload, self._nal_length_size)
            except ValueError:
                return
            if packet.keyframe:
                nals = self._parameter_sets + nals
            # RTP payloads once for every viewer (what aiortc's H264Encoder.pack makes of a frame).
            frame = RTCEncodedFrame(H264Encoder._packetize(nals), packet.pts * VIDEO_CLOCK_PER_MS, None)
            size = sum(len(payload) for payload in frame.payloads)
            for viewer in self.viewers:
                if viewer.video is not None:
                    viewer.video.offer(frame, packet.keyframe, size)
            self.stream.counters.sent(size * len(self.viewers))
        elif packet.kind is TrackKind.AUDIO and self._opus is not None:
            self._opus.submit((packet.payload, packet.pts))

    def _on_opus(self, item: tuple[bytes, int]) -> None:
        payload, pts = item  # (pts in 1/48000 s, Opus's RTP clock)
        frame = RTCEncodedFrame([payload], pts, None)
        for viewer in self.viewers:
            if viewer.audio is not None:
                viewer.audio.offer(frame, size=len(payload))
        self.stream.counters.sent(len(payload) * len(self.viewers))
