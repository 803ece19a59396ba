"""AAC configuration: the AudioSpecificConfig (ISO 14496-3) fields a stream info shows."""

from __future__ import annotations

from dataclasses import dataclass

from media_engine.codecs.bitreader import BitReader

SAMPLE_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350]
CHANNEL_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "7.1"}


@dataclass(frozen=True)
class AacConfig:
    object_type: int
    sample_rate: int
    channels: int
    sample_rate_index: int

    @property
    def codec_string(self) -> str:
        return f"mp4a.40.{self.object_type}"

    @property
    def channel_layout(self) -> str:
        return CHANNEL_LAYOUTS.get(self.channels, f"{self.channels} channels")


def parse_audio_specific_config(data: bytes) -> AacConfig:
    """Raises ValueError when malformed."""
    if len(data) < 2:
        raise ValueError("AudioSpecificConfig too short")
    reader = BitReader(data)
    object_type = reader.bits(5)
    if object_type == 31:
        object_type = 32 + reader.bits(6)
    index = reader.bits(4)
    if index == 15:
        sample_rate = reader.bits(24)
    elif index < len(SAMPLE_RATES):
        sample_rate = SAMPLE_RATES[index]
    else:
        raise ValueError(f"reserved sampling frequency index {index}")
    channel_configuration = reader.bits(4)
    channels = 8 if channel_configuration == 7 else channel_configuration
    return AacConfig(object_type, sample_rate, channels, index)
