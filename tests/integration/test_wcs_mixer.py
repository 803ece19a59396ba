"""WCS /transcoder/* and /mixer/* on the real platform: ffmpeg publishes solid-colour streams with
tones, the transcode worker encodes and mixes, and ffmpeg/ffprobe judge the output streams:
the transcoder's size (ffprobe), a watermark's pixels where it was placed, both halves of a
two-stream mix (pixels of each), and /mixer/setAudioVideo silence (volumedetect)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import requests

from tests.integration.conftest import wait_for
from tests.integration.test_engine import codecs, ffprobe, live_names
from tests.tools.audio import levels

pytestmark = pytest.mark.services


def wcs(platform, method: str, body: dict | None = None) -> requests.Response:
    return requests.post(f"{platform.url}/rest-api/{method}", json=body or {}, timeout=20)


def publish_colour(platform, name: str, colour: str, frequency: int, seconds: float = 90) -> subprocess.Popen:
    """ffmpeg publishing a solid ``colour`` picture (320x180, 15 fps) with a sine tone."""
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", f"color=c={colour}:size=320x180:rate=15",
         "-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=48000", "-ac", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-t", str(seconds), "-f", "flv", f"{platform.rtmp}/app/{name}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def picture(url: str, width: int, height: int) -> np.ndarray | None:
    """One decoded picture of the live stream at ``url`` as RGB (None if none came)."""
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-rw_timeout", "10000000", "-i", url, "-ss", "0.5", "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    if len(result.stdout) != width * height * 3:
        return None
    return np.frombuffer(result.stdout, np.uint8).reshape(height, width, 3)


def is_colour(pixel: np.ndarray, rgb: tuple[int, int, int]) -> bool:
    return all(abs(int(value) - wanted) < 50 for value, wanted in zip(pixel, rgb, strict=True))


def make_watermark(platform, name: str, size: str = "32x32") -> None:
    media = platform.folder / "media"
    media.mkdir(exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c=white:size={size}", "-frames:v", "1",
         str(media / name)],
        check=True, timeout=30,
    )  # fmt: skip


WHITE, BLUE, RED = (255, 255, 255), (0, 0, 255), (255, 0, 0)


def test_transcoder_encodes_at_the_encoder_size_and_places_the_watermark(live_platform):
    publisher = publish_colour(live_platform, "tsource", "blue", 440)
    try:
        wait_for(lambda: "tsource" in live_names(live_platform), 20)
        make_watermark(live_platform, "mark.png")
        body = {
            "uri": "transcoder://tcode1",
            "remoteStreamName": "tsource",
            "localStreamName": "tsource_small",
            "encoder": {"width": 160, "height": 90, "fps": 15, "keyFrameInterval": 15, "preset": "ultrafast"},
        }
        response = wcs(live_platform, "transcoder/startup", body)
        assert response.status_code == 200, response.text
        assert wcs(live_platform, "transcoder/startup", body).status_code == 409
        wait_for(lambda: "tsource_small" in live_names(live_platform), 30)
        found = wcs(live_platform, "transcoder/find", {"remoteStreamName": "tsource"}).json()
        assert [(t["uri"], t["localStreamName"], t["status"]) for t in found] == [
            ("transcoder://tcode1", "tsource_small", "PROCESSED_LOCAL")
        ]
        url = f"{live_platform.rtmp}/app/tsource_small"
        video = codecs(ffprobe(url))["video"]
        assert (video["codec_name"], video["width"], video["height"]) == ("h264", 160, 90)
        before = picture(url, 160, 90)
        assert before is not None and is_colour(before[20, 20], BLUE)

        mark = {"uri": "transcoder://tcode1", "watermark": "mark.png", "x": 10, "y": 10}
        assert wcs(live_platform, "transcoder/set_watermark", mark).status_code == 200

        def watermarked():
            frame = picture(url, 160, 90)
            return frame is not None and is_colour(frame[26, 26], WHITE) and is_colour(frame[70, 120], BLUE)

        wait_for(watermarked, 30, lambda: "the watermark's white square never showed at (10,10)-(42,42)")
        missing = {**mark, "watermark": "nothing.png"}
        assert wcs(live_platform, "transcoder/set_watermark", missing).status_code == 400

        assert wcs(live_platform, "transcoder/terminate", {"uri": "transcoder://tcode1"}).status_code == 200
        wait_for(lambda: "tsource_small" not in live_names(live_platform), 30)
        assert wcs(live_platform, "transcoder/find_all").status_code == 404
    finally:
        publisher.kill()


def test_mixer_shows_both_streams_and_mutes_them(live_platform):
    red = publish_colour(live_platform, "mixred", "red", 440)
    blue = publish_colour(live_platform, "mixblue", "blue", 880)
    try:
        wait_for(lambda: {"mixred", "mixblue"} <= set(live_names(live_platform)), 20)
        startup = {
            "uri": "mixer://m1",
            "localStreamName": "m1",
            "mixerVideoWidth": 320,
            "mixerVideoHeight": 180,
            "mixerVideoFps": 15,
            "mixerVideoPreset": "ultrafast",
        }
        assert wcs(live_platform, "mixer/startup", startup).status_code == 200
        for name in ("mixred", "mixblue"):
            response = wcs(live_platform, "mixer/add", {"uri": "mixer://m1", "remoteStreamName": name})
            assert response.status_code == 200, response.text
        assert wcs(live_platform, "mixer/add", {"uri": "mixer://m1", "remoteStreamName": "nosuch"}).status_code == 404
        wait_for(lambda: "m1" in live_names(live_platform), 30)
        url = f"{live_platform.rtmp}/app/m1"

        def both_halves():
            frame = picture(url, 320, 180)
            return frame is not None and is_colour(frame[90, 80], RED) and is_colour(frame[90, 240], BLUE)

        wait_for(both_halves, 40, lambda: "the mix never showed red on the left and blue on the right")
        mixers = wcs(live_platform, "mixer/find_all").json()
        assert [(m["uri"], m["localStreamName"], m["status"], len(m["mediaSessions"])) for m in mixers] == [
            ("mixer://m1", "m1", "PROCESSED_LOCAL", 2)
        ]
        mean, _ = levels(url)
        assert mean > -40, f"the two tones are mixed in: mean {mean} dB"

        muted = {"uri": "mixer://m1", "streams": ["mixred", "mixblue"], "audioLevel": 0}
        assert wcs(live_platform, "mixer/setAudioVideo", muted).status_code == 200

        def silent():
            _, peak = levels(url)
            return peak < -70

        wait_for(silent, 30, lambda: "the muted mix still has sound", interval=1)
        bad = {"uri": "mixer://m1", "streams": ["mixred"], "audioLevel": 500}
        assert wcs(live_platform, "mixer/setAudioVideo", bad).status_code == 400

        assert wcs(live_platform, "mixer/terminate", {"uri": "mixer://m1"}).status_code == 200
        wait_for(lambda: "m1" not in live_names(live_platform), 30)
        assert wcs(live_platform, "mixer/terminate", {"uri": "mixer://m1"}).status_code == 404
    finally:
        red.kill()
        blue.kill()
