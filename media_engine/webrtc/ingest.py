"""Received WebRTC tracks into a live stream: H.264 relayed as it comes (Annex B → AVCC, parameter
sets → AVCDecoderConfigurationRecord), VP8 transcoded to H.264 and Opus to AAC on threads, so the
stream plays over RTMP and HLS like an RTMP-published one. Used by WHIP sessions and WHEP pulls.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from media_engine.packets import MediaPacket, TrackKind
from media_engine.registry import LiveStream
from media_engine.webrtc.h264 import (
    NAL_AUD,
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    avc_decoder_configuration,
    nal_type,
    split_annexb,
    to_avcc,
)
from media_engine.webrtc.passthrough import EncodedFrame, receive_encoded
from media_engine.webrtc.transcode import OpusToAac, TranscoderThread, Vp8ToH264

logger = logging.getLogger(__name__)

# Media is held back until every negotiated track has its codec configuration (so RTMP players and
# HLS see all tracks from the start), but no longer than this.
CONFIG_GATE_SECONDS = 3.0


class H264Packetizer:
    """Annex B access units → AVCC `MediaPacket`s, with a configuration packet whenever SPS/PPS change.
    Frames before the first keyframe are dropped (nothing can decode them)."""

    def __init__(self) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        self.config: bytes | None = None
        self._keyframe_seen = False

    def packets(self, annexb: bytes, ts_ms: int) -> list[MediaPacket]:
        nals = []
        for nal in split_annexb(annexb):
            kind = nal_type(nal)
            if kind == NAL_SPS:
                self.sps = nal
            elif kind == NAL_PPS:
                self.pps = nal
            elif kind == NAL_AUD:
                continue
            nals.append(nal)
        out = []
        if self.sps is not None and self.pps is not None:
            config = avc_decoder_configuration(self.sps, self.pps)
            if config != self.config:
                self.config = config
                out.append(MediaPacket(TrackKind.VIDEO, "h264", ts_ms, ts_ms, config, config=True))
        keyframe = any(nal_type(nal) == NAL_IDR for nal in nals)
        self._keyframe_seen = self._keyframe_seen or keyframe
        if self.config is None or not self._keyframe_seen or not nals:
            return out
        out.append(MediaPacket(TrackKind.VIDEO, "h264", ts_ms, ts_ms, to_avcc(nals), keyframe))
        return out


class WebRtcIngest:
    """The tracks of one peer connection published as ``stream``.

    ``expected`` names the kinds negotiated ("audio", "video"). Every ``keyframe_interval`` seconds
    an H.264 sender is asked for a keyframe (PLI), since browsers send one only when asked and HLS
    segments start on keyframes.
    """

    def __init__(self, stream: LiveStream, expected: set[str], keyframe_interval: float = 2.0) -> None:
        self.stream = stream
        self.expected = set(expected)
        # The stream starts (becomes visible) once every negotiated track is configured.
        stream.announce(video="video" in self.expected, audio="audio" in self.expected)
        self.keyframe_interval = keyframe_interval
        self.loop = asyncio.get_running_loop()
        self.origin = time.monotonic()
        self.h264 = H264Packetizer()
        self.audio_config: bytes | None = None
        self.frames_received = 0
        self._anchors: dict[str, float] = {}
        self._pending: list[MediaPacket] | None = []
        self._tasks: set[asyncio.Task] = set()
        self._opus_to_aac: TranscoderThread | None = None
        self._vp8_to_h264: TranscoderThread | None = None
        self._closed = False

    def add_track(self, track: MediaStreamTrack, receiver: RTCRtpReceiver | None = None) -> None:
        """Take a remote track (call from the peer connection's "track" event, before it connects)."""
        receive_encoded(track)
        self._start(self._read(track), f"webrtc ingest {track.kind}")
        if track.kind == "video" and receiver is not None and self.keyframe_interval > 0:
            self._start(self._request_keyframes(receiver), "webrtc keyframe requests")

    def _start(self, coroutine, name: str) -> None:
        task = self.loop.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, EncodedFrame):
                    self.on_frame(frame)
        except MediaStreamError:
            logger.debug("webrtc ingest of %s: %s track ended", self.stream.key, track.kind)

    async def _request_keyframes(self, receiver: RTCRtpReceiver) -> None:
        while True:
            await asyncio.sleep(self.keyframe_interval)
            if self.h264.config is None and self._vp8_to_h264 is not None:
                return  # VP8 is transcoded: the encoder makes its own keyframes
            for source in receiver.getSynchronizationSources():
                try:
                    await receiver._send_rtcp_pli(source.source)
                except ConnectionError:
                    return

    def _timestamp_ms(self, frame: EncodedFrame) -> int:
        # Each track's RTP clock starts at its first frame; anchor it at that frame's arrival, which
        # lines the tracks up with each other to within the network jitter.
        anchor = self._anchors.get(frame.codec)
        if anchor is None:
            anchor = self._anchors[frame.codec] = (frame.received_at - self.origin) * 1000
        return int(anchor + frame.timestamp * 1000 / frame.clock_rate)

    def on_frame(self, frame: EncodedFrame) -> None:
        if self._closed:
            return
        self.frames_received += 1
        self.stream.counters.received(len(frame.data))
        ts_ms = self._timestamp_ms(frame)
        codec = frame.codec.lower()
        if codec == "h264":
            for packet in self.h264.packets(frame.data, ts_ms):
                self._emit(packet)
        elif codec == "vp8":
            if self._vp8_to_h264 is None:
                logger.info("webrtc ingest of %s: transcoding VP8 to H.264", self.stream.key)
                self._vp8_to_h264 = TranscoderThread(
                    f"vp8->h264 {self.stream.key}", Vp8ToH264(), self._on_transcoded_video, self.loop, maxsize=30
                )
            self._vp8_to_h264.submit((frame.data, ts_ms))
        elif codec == "opus":
            if self._opus_to_aac is None:
                converter = OpusToAac()
                self.audio_config = converter.audio_specific_config
                self._emit(MediaPacket(TrackKind.AUDIO, "aac", ts_ms, ts_ms, self.audio_config, config=True))
                self._opus_to_aac = TranscoderThread(
                    f"opus->aac {self.stream.key}", converter, self._on_transcoded_audio, self.loop
                )
            self._opus_to_aac.submit((frame.data, ts_ms))
        else:
            logger.debug("webrtc ingest of %s: ignoring %s", self.stream.key, frame.codec)

    def _on_transcoded_video(self, item: tuple[bytes, int]) -> None:
        annexb, ts_ms = item
        for packet in self.h264.packets(annexb, ts_ms):
            self._emit(packet)

    def _on_transcoded_audio(self, item: tuple[bytes, int]) -> None:
        payload, ts_ms = item
        self._emit(MediaPacket(TrackKind.AUDIO, "aac", ts_ms, ts_ms, payload))

    def _emit(self, packet: MediaPacket) -> None:
        if self._closed:
            return
        pending = self._pending
        if pending is None:
            self.stream.push(packet)
            return
        pending.append(packet)
        configured = {"video"} if self.h264.config else set()
        if self.audio_config:
            configured.add("audio")
        if self.expected <= configured or time.monotonic() - self.origin > CONFIG_GATE_SECONDS:
            self._pending = None
            configs = [p for p in pending if p.config]
            media = sorted((p for p in pending if not p.config), key=lambda p: p.dts)
            for held in configs + media:
                self.stream.push(held)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for thread in (self._opus_to_aac, self._vp8_to_h264):
            if thread is not None:
                thread.close()
