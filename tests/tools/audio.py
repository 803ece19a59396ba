"""Audio helpers of the tests: measure levels with ffmpeg's volumedetect, make WAV tones."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def levels(url: str, seconds: float = 2.0) -> tuple[float, float]:
    """(mean, max) volume in dB of ``seconds`` of the audio at ``url``, by ffmpeg's volumedetect."""
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-i", url, "-t", str(seconds),
         "-vn", "-af", "volumedetect", "-f", "null", "-"],
        capture_output=True, text=True, timeout=40, check=False,
    )  # fmt: skip
    mean = re.search(r"mean_volume: (-?[\d.]+|-inf) dB", result.stderr)
    peak = re.search(r"max_volume: (-?[\d.]+|-inf) dB", result.stderr)
    assert mean and peak, result.stderr[-2000:]
    return float(mean.group(1)), float(peak.group(1))


def make_wav(path: Path, frequency: int, seconds: float, rate: int = 22050, volume: float = 7.0) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"sine=frequency={frequency}:sample_rate={rate}:duration={seconds}",
         "-af", f"volume={volume}", "-ac", "1", "-c:a", "pcm_s16le", str(path)],
        check=True, timeout=30,
    )  # fmt: skip
    return path
