"""WebRTC with the real stack and a real browser: headless Chromium (fake camera) on the operator page
at the media port publishes over WHIP and plays over WHEP; ffmpeg publishes over RTMP, ffprobe reads
RTMP and HLS, and the OME API shows the streams, their source and their WebRTC viewers.
"""

from __future__ import annotations

import subprocess

import pytest
import requests
from playwright.sync_api import sync_playwright

from tests.integration.conftest import CHROMIUM, CHROMIUM_ARGS, LiveStreamHub, wait_for
from tests.integration.test_engine import codecs, ffprobe, live_names

pytestmark = pytest.mark.services

WEBRTC_CHROMIUM_ARGS = [
    *CHROMIUM_ARGS,
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # Host candidates on loopback, by address (the engine's ICE addresses are 127.0.0.1 here).
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


@pytest.fixture(scope="module")
def webrtc_platform(tmp_path_factory, redis_url):
    server = LiveStreamHub(tmp_path_factory.mktemp("webrtc"), redis_url)
    server.env["STREAMHUB_WEBRTC_ICE_ADDRESSES"] = "127.0.0.1"
    server.env["STREAMHUB_WEBRTC_KEYFRAME_INTERVAL"] = "1"
    server.start(engine=True)
    response = server.api(
        "PATCH", "/v1/vhosts/default/apps/app", json={"publishers": {"hls": {"segmentDuration": 1, "segmentCount": 5}}}
    )
    assert response.status_code == 200
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=WEBRTC_CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def operator_page(chromium, webrtc_platform):
    """The operator page of the media port, with the stream name to use filled in."""
    page = chromium.new_page()
    page.goto(f"{webrtc_platform.media}/")
    yield page
    page.close()


def publish_rtmp(platform, name: str, seconds: float = 40) -> subprocess.Popen:
    """ffmpeg publishing H.264 (no B-frames, as WebRTC players want) + AAC over RTMP."""
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-t", str(seconds), "-f", "flv", f"{platform.rtmp}/app/{name}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stats(platform, name: str) -> dict:
    return platform.api("GET", f"/v1/stats/current/vhosts/default/apps/app/streams/{name}").json()["response"]


def test_the_browser_plays_an_rtmp_stream_over_whep(webrtc_platform, operator_page):
    publisher = publish_rtmp(webrtc_platform, "rtmpcam")
    try:
        wait_for(lambda: "rtmpcam" in live_names(webrtc_platform), 20)
        operator_page.fill("#stream", "rtmpcam")
        location = operator_page.evaluate("streamhub.play()")
        assert "/app/rtmpcam/webrtc-session/" in location

        played = wait_for(
            lambda: (s := operator_page.evaluate("streamhub.stats()"))["framesDecoded"] > 25 and s,
            30,
            lambda: str(operator_page.evaluate("streamhub.stats()")) + webrtc_platform.log("engine")[-2000:],
        )
        assert (played["width"], played["height"]) == (640, 360)
        assert played["audioSamples"] > 0  # AAC reached the browser as Opus

        # The stats API counts the viewer under connections.webrtc (heartbeats carry it).
        wait_for(lambda: stats(webrtc_platform, "rtmpcam")["connections"]["webrtc"] == 1, 10)

        # DELETE on the Location ends the session, and the viewer is no longer counted.
        operator_page.evaluate("streamhub.stop('whep')")
        wait_for(lambda: stats(webrtc_platform, "rtmpcam")["connections"]["webrtc"] == 0, 10)
        assert requests.delete(location, timeout=5).status_code == 404
    finally:
        publisher.kill()


def test_the_browser_publishes_over_whip_and_it_plays_over_rtmp_and_hls(webrtc_platform, operator_page):
    operator_page.fill("#stream", "webcam")
    location = operator_page.evaluate("streamhub.publish()")
    assert "/app/webcam/webrtc-session/" in location
    wait_for(lambda: "webcam" in live_names(webrtc_platform), 20, lambda: webrtc_platform.log("engine")[-2000:])

    info = webrtc_platform.api("GET", "/v1/vhosts/default/apps/app/streams/webcam").json()["response"]
    assert info["input"]["sourceType"] == "WebRTC"
    # Listed only once its tracks are known: read right after, they are there.
    assert sorted(track["type"] for track in info["input"]["tracks"]) == ["Audio", "Video"], info

    # Chromium's fake camera is 640x480; H.264 is relayed, Opus becomes AAC.
    rtmp = codecs(ffprobe(f"{webrtc_platform.rtmp}/app/webcam"))
    assert (rtmp["video"]["codec_name"], rtmp["video"]["width"], rtmp["video"]["height"]) == ("h264", 640, 480)
    assert (rtmp["audio"]["codec_name"], rtmp["audio"]["sample_rate"]) == ("aac", "48000")
    hls = codecs(ffprobe(f"{webrtc_platform.media}/app/webcam/ts:playlist.m3u8"))
    assert (hls["video"]["codec_name"], hls["video"]["width"]) == ("h264", 640)
    assert hls["audio"]["codec_name"] == "aac"

    # A second publisher of the same name is refused; ending the session ends the stream.
    duplicate = requests.post(
        f"{webrtc_platform.media}/app/webcam?direction=whip",
        data="v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
        headers={"Content-Type": "application/sdp"},
        timeout=5,
    )
    assert duplicate.status_code == 409
    operator_page.evaluate("streamhub.stop('whip')")
    wait_for(lambda: "webcam" not in live_names(webrtc_platform), 20)


def test_a_vp8_publish_is_turned_into_h264_for_rtmp_and_hls(webrtc_platform, operator_page):
    operator_page.fill("#stream", "vp8cam")
    operator_page.evaluate("streamhub.publish({videoCodec: 'VP8'})")
    answer = operator_page.evaluate("streamhub.sessions.whip.pc.remoteDescription.sdp")
    video = answer.split("m=video", 1)[1].split("m=audio", 1)[0]
    assert "VP8/90000" in video and "H264" not in video, "the browser offered and the engine took VP8 only"
    wait_for(lambda: "vp8cam" in live_names(webrtc_platform), 20, lambda: webrtc_platform.log("engine")[-2000:])
    rtmp = codecs(ffprobe(f"{webrtc_platform.rtmp}/app/vp8cam"))
    assert (rtmp["video"]["codec_name"], rtmp["video"]["width"], rtmp["video"]["height"]) == ("h264", 640, 480)
    hls = codecs(ffprobe(f"{webrtc_platform.media}/app/vp8cam/ts:playlist.m3u8"))
    assert hls["video"]["codec_name"] == "h264" and hls["audio"]["codec_name"] == "aac"
    operator_page.evaluate("streamhub.stop('whip')")
    wait_for(lambda: "vp8cam" not in live_names(webrtc_platform), 20)
