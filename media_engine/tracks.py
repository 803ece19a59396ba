"""What a live stream's tracks are: codec parameters from the configuration records, and bitrate,
frame rate and GOP size measured from the packets as they pass.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from media_engine.codecs.aac import parse_audio_specific_config
from media_engine.codecs.h264 import parse_avc_config
from media_engine.packets import MediaPacket

logger = logging.getLogger(__name__)

# Rates are recomputed over windows of this many milliseconds of media time.
METER_WINDOW_MS = 2000


@dataclass
class TrackInfo:
    id: int
    kind: str  # "video" | "audio"
    codec: str  # "H264", "AAC"...
    bitrate: int = 0
    width: int = 0
    height: int = 0
    framerate: float = 0.0
    keyframe_interval: int = 0
    has_bframes: bool = False
    samplerate: int = 0
    channels: int = 0
    channel_layout: str = ""
    codec_string: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


class TrackMeter:
    """Measures one track. ``observe`` is on the publisher's hot path: a few integer operations."""

    def __init__(self) -> None:
        self.bitrate = 0
        self.framerate = 0.0
        self.keyframe_interval = 0
        self.has_bframes = False
        self._window_start: int | None = None
        self._window_bytes = 0
        self._window_frames = 0
        self._frames_since_keyframe = 0
        self._last_pts: int | None = None

    def observe(self, packet: MediaPacket) -> None:
        if self._window_start is None:
            self._window_start = packet.dts
        self._window_bytes += len(packet.payload)
        self._window_frames += 1
        if packet.keyframe:
            if self._frames_since_keyframe:
                self.keyframe_interval = self._frames_since_keyframe
            self._frames_since_keyframe = 0
        self._frames_since_keyframe += 1
        if self._last_pts is not None and packet.pts < self._last_pts:
            self.has_bframes = True
        self._last_pts = packet.pts
        span = packet.dts - self._window_start
        if span >= METER_WINDOW_MS:
            self.bitrate = self._window_bytes * 8000 // span
            self.framerate = round(self._window_frames * 1000 / span, 2)
            self._window_start = packet.dts
            self._window_bytes = 0
            self._window_frames = 0


def describe_video(config: MediaPacket | None, meter: TrackMeter, track_id: int) -> TrackInfo | None:
    if config is None:
        return None
    info = TrackInfo(id=track_id, kind="video", codec=config.codec.upper())
    if config.codec == "h264":
        try:
            avc = parse_avc_config(config.payload)
            info.width, info.height, info.codec_string = avc.width, avc.height, avc.codec_string
        except ValueError as error:
            logger.debug("unreadable AVC configuration: %s", error)
    info.bitrate, info.framerate = meter.bitrate, meter.framerate
    info.keyframe_interval, info.has_bframes = meter.keyframe_interval, meter.has_bframes
    return info


def describe_audio(config: MediaPacket | None, meter: TrackMeter, track_id: int) -> TrackInfo | None:
    if config is None:
        return None
    info = TrackInfo(id=track_id, kind="audio", codec=config.codec.upper())
    if config.codec == "aac":
        try:
            aac = parse_audio_specific_config(config.payload)
            info.samplerate, info.channels = aac.sample_rate, aac.channels
            info.channel_layout, info.codec_string = aac.channel_layout, aac.codec_string
        except ValueError as error:
            logger.debug("unreadable AudioSpecificConfig: %s", error)
    info.bitrate = meter.bitrate
    return info
