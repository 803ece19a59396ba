"""SRT ingest with real clients: Debian's ffmpeg publishes MPEG-TS over SRT with OME's streamid
convention, ffprobe plays it back over HLS; unknown applications and unsigned publishes into a
signed application are refused."""

from __future__ import annotations

import subprocess
from urllib.parse import quote

import pytest

from media_engine.admission import make_policy, sign_url
from tests.integration.conftest import LiveStreamHub, wait_for
from tests.integration.test_engine import codecs, ffprobe

pytestmark = pytest.mark.services

SECRET = "srt-policy-secret"


@pytest.fixture(scope="module")
def srt_platform(tmp_path_factory, redis_url):
    server = LiveStreamHub(tmp_path_factory.mktemp("srt"), redis_url)
    server.start(engine=True)
    response = server.api("POST", "/v1/vhosts/default/apps", json=[{"name": "signedsrt", "type": "live"}])
    assert response.status_code == 200, response.text
    server.manage(
        "shell",
        "-c",
        "from apps.hosting.models import Application as A; a = A.objects.get(name='signedsrt'); "
        f"a.signed_policy = {{'secretKey': '{SECRET}', 'enables': {{'providers': 'srt'}}}}; a.save()",
    )
    yield server
    server.stop()


def publish_srt(platform, streamid: str, seconds: float = 30) -> subprocess.Popen:
    url = f"srt://127.0.0.1:{platform.srt_port}?streamid={quote(streamid, safe='')}&pkt_size=1316"
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=480x270:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-t", str(seconds), "-f", "mpegts", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def live(platform, app: str) -> dict[str, dict]:
    names = platform.api("GET", f"/v1/vhosts/default/apps/{app}/streams").json().get("response") or []
    return {name: {} for name in names}


def test_an_srt_publish_plays_over_hls(srt_platform):
    publisher = publish_srt(srt_platform, "default/app/srtcam")
    try:
        wait_for(lambda: "srtcam" in live(srt_platform, "app"), 30, lambda: srt_platform.log("engine")[-2000:])
        info = srt_platform.api("GET", "/v1/vhosts/default/apps/app/streams/srtcam").json()["response"]
        assert info["input"]["sourceType"] == "Srt"
        streams = codecs(ffprobe(f"{srt_platform.media}/app/srtcam/ts:playlist.m3u8"))
        assert streams["video"]["codec_name"] == "h264"
        assert (streams["video"]["width"], streams["video"]["height"]) == (480, 270)
        assert streams["audio"]["codec_name"] == "aac"
    finally:
        publisher.kill()
        publisher.wait()
    # The caller is gone: the stream ends.
    wait_for(lambda: "srtcam" not in live(srt_platform, "app"), 30)


def test_an_srt_url_streamid_names_the_app_by_host(srt_platform):
    publisher = publish_srt(srt_platform, f"srt://127.0.0.1:{srt_platform.srt_port}/app/byurl", seconds=20)
    try:
        wait_for(lambda: "byurl" in live(srt_platform, "app"), 30, lambda: srt_platform.log("engine")[-2000:])
    finally:
        publisher.kill()
        publisher.wait()


def test_unknown_applications_and_unsigned_publishes_are_refused(srt_platform):
    for streamid in ("default/nosuchapp/cam", "default/signedsrt/cam"):
        publisher = publish_srt(srt_platform, streamid, seconds=20)
        try:
            publisher.wait(timeout=30)  # the engine hangs up: ffmpeg cannot send
        finally:
            publisher.kill()
        assert publisher.returncode != 0, streamid
    assert "cam" not in live(srt_platform, "signedsrt")
    assert "refused" in srt_platform.log("engine")
    assert SECRET not in srt_platform.log("engine")


def test_a_signed_srt_streamid_publishes(srt_platform):
    import time

    policy = make_policy(int((time.time() + 60) * 1000), allow_ip="127.0.0.1/32")
    streamid = sign_url("default/signedsrt/signedcam", SECRET, policy)
    publisher = publish_srt(srt_platform, streamid, seconds=20)
    try:
        wait_for(lambda: "signedcam" in live(srt_platform, "signedsrt"), 30, lambda: srt_platform.log("engine")[-2000:])
    finally:
        publisher.kill()
        publisher.wait()
    assert SECRET not in srt_platform.log("engine")
