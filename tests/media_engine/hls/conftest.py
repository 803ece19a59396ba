"""Test media for the HLS tests: ffmpeg-made FLV files (testsrc + sine), once per session."""

from pathlib import Path

import pytest

from media_engine.hls.filesource import make_test_flv


@pytest.fixture(scope="session")
def av_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s, 640x360, 25 fps H.264 (GOP 50) + AAC."""
    return make_test_flv(tmp_path_factory.mktemp("hls-media") / "av.flv", duration=10, size="640x360", fps=25, gop=50)


@pytest.fixture(scope="session")
def audio_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s of AAC only."""
    return make_test_flv(tmp_path_factory.mktemp("hls-media") / "audio.flv", duration=10, video=False)
