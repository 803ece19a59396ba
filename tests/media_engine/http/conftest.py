"""Test media for the media HTTP server tests: an ffmpeg-made FLV (testsrc + sine)."""

from pathlib import Path

import pytest

from media_engine.hls.filesource import make_test_flv


@pytest.fixture(scope="session")
def http_av_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s, 640x360, 25 fps H.264 (GOP 50) + AAC."""
    return make_test_flv(tmp_path_factory.mktemp("http-media") / "av.flv", duration=10, size="640x360", fps=25, gop=50)
