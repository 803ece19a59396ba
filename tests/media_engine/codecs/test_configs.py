"""Codec configuration parsing against what Debian's ffmpeg really produces."""

import subprocess

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st

from media_engine.codecs.aac import parse_audio_specific_config
from media_engine.codecs.h264 import parse_avc_config


def encode_flv(path, size: str, rate: int, channels: int, extra: list[str] = ()) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25",
         "-f", "lavfi", "-i", f"sine=sample_rate={rate}", "-ac", str(channels), "-t", "1",
         "-c:v", "libx264", *extra, "-c:a", "aac", str(path)],
        check=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("size", "profile_args", "expected"),
    [
        ("640x360", ["-profile:v", "high"], (640, 360, 100)),
        ("1280x720", ["-profile:v", "baseline"], (1280, 720, 66)),
        ("322x242", ["-profile:v", "main"], (322, 242, 77)),  # needs frame cropping
        ("176x144", ["-profile:v", "high444"], (176, 144, 244)),
    ],
)
def test_it_reads_dimensions_and_profile_from_ffmpeg_h264(tmp_path, size, profile_args, expected):
    path = tmp_path / "clip.flv"
    pix_fmt = "yuv444p" if "high444" in profile_args else "yuv420p"
    encode_flv(path, size, 48000, 2, [*profile_args, "-pix_fmt", pix_fmt])
    with av.open(str(path)) as container:
        record = bytes(container.streams.video[0].codec_context.extradata)
    config = parse_avc_config(record)
    assert (config.width, config.height, config.profile) == expected
    assert config.nal_length_size == 4
    assert config.codec_string.startswith(f"avc1.{expected[2]:02x}")


@pytest.mark.parametrize(
    ("rate", "channels", "layout"), [(48000, 2, "stereo"), (44100, 1, "mono"), (22050, 2, "stereo")]
)
def test_it_reads_aac_sample_rate_and_channels(tmp_path, rate, channels, layout):
    path = tmp_path / "clip.flv"
    encode_flv(path, "160x120", rate, channels)
    with av.open(str(path)) as container:
        record = bytes(container.streams.audio[0].codec_context.extradata)
    config = parse_audio_specific_config(record)
    assert (config.sample_rate, config.channels, config.channel_layout) == (rate, channels, layout)
    assert config.codec_string == "mp4a.40.2"


@given(st.binary(max_size=64))
def test_garbage_only_raises_value_error(data):
    for parser in (parse_avc_config, parse_audio_specific_config):
        try:
            parser(data)
        except ValueError:
            pass
