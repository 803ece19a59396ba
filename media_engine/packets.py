"""Media packets: the one unit every ingest produces and every output consumes."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TrackKind(enum.Enum):
    VIDEO = "video"
    AUDIO = "audio"
    DATA = "data"


@dataclass(frozen=True, slots=True)
class MediaPacket:
    """One access unit (or a codec configuration record) of one track.

    Timestamps are in milliseconds (RTMP's time base). ``payload`` is codec data
    as FLV carries it, without the FLV tag/codec headers:

    - H.264 (``codec="h264"``): ``config=True`` carries the AVCDecoderConfigurationRecord;
      otherwise length-prefixed (AVCC, 4-byte) NAL units of one access unit.
    - AAC (``codec="aac"``): ``config=True`` carries the AudioSpecificConfig;
      otherwise one raw AAC frame (no ADTS header).
    - DATA (``codec="amf0"``): an AMF0-encoded script message; ``config=True`` marks ``onMetaData``
      (kept and replayed to new readers like the codec configuration records).
    """

    kind: TrackKind
    codec: str
    dts: int
    pts: int
    payload: bytes
    keyframe: bool = False
    config: bool = False

    @property
    def composition_offset(self) -> int:
        return self.pts - self.dts
