"""Output profiles on the real platform: a profile with 720p + 360p renditions and thumbnails,
applied by a transcode job (Celery worker, queue `transcode`) as soon as a stream is published.
Judged by ffprobe (RTMP and HLS of each rendition), the master playlist (BANDWIDTH, RESOLUTION,
CODECS), hls.js in headless Chromium (plays the master and switches renditions), the OME stream
info and stats APIs, and the thumbnails (size, refreshed while live, gone after the stream)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import av
import m3u8
import pytest
import requests

from tests.integration.conftest import ARTIFACTS, wait_for
from tests.integration.test_engine import codecs, ffprobe, live_names

pytestmark = pytest.mark.services
APP = "/v1/vhosts/default/apps/app"
PROFILE = {
    "name": "abr",
    "outputStreamName": "${OriginStreamName}",
    "encodes": {
        "videos": [
            {"name": "v720", "codec": "h264", "bitrate": 1200000, "width": 1280, "height": 720, "preset": "ultrafast"},
            {"name": "v360", "codec": "h264", "bitrate": 300000, "height": 360, "preset": "ultrafast"},
        ],
        "audios": [{"name": "aac", "codec": "aac", "bitrate": 64000, "samplerate": 48000, "channel": 2}],
        "images": [
            {"codec": "jpeg", "width": 160, "height": 90, "framerate": 1},
            {"codec": "png", "width": 96, "framerate": 1},
        ],
    },
    "playlists": [
        {
            "name": "ABR",
            "fileName": "abr",
            "renditions": [
                {"name": "720p", "video": "v720", "audio": "aac"},
                {"name": "360p", "video": "v360", "audio": "aac"},
            ],
        }
    ],
}
# bypass_profile of the spec: pass-through only, it must start no transcode.
BYPASS_PROFILE = {
    "name": "bypass_profile",
    "outputStreamName": "${OriginStreamName}_bypass",
    "encodes": {"videos": [{"bypass": True}], "audios": [{"bypass": True}]},
}
PLAYER = """<!doctype html><html><body><video id="player" muted autoplay playsinline></video>
<script src="{hls_js}"></script>
<script>
  const player = document.getElementById("player");
  window.switches = [];
  window.hls = new Hls({{startLevel: 1}});
  hls.on(Hls.Events.LEVEL_SWITCHED, (event, data) => window.switches.push(data.level));
  hls.loadSource("{master}");
  hls.attachMedia(player);
</script></body></html>"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """Four seconds of 720p (1 s GOP) with audio, encoded once: the publisher only copies it."""
    path = tmp_path_factory.mktemp("clip") / "clip720.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc=size=1280x720:rate=15", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-ac", "2", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module", autouse=True)
def profiles(live_platform):
    publishers = {"hls": {"segmentDuration": 1, "segmentCount": 6}}
    assert live_platform.api("PATCH", APP, json={"publishers": publishers}).status_code == 200
    response = live_platform.api("POST", f"{APP}/outputProfiles", json=[PROFILE, BYPASS_PROFILE])
    assert response.status_code == 200, response.text


def publish(platform, clip: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
         "-c", "copy", "-f", "flv", f"{platform.rtmp}/app/{name}"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def get(url: str) -> requests.Response | None:
    response = requests.get(url, timeout=10)
    return response if response.status_code == 200 else None


def master_variants(platform, name: str, count: int) -> m3u8.M3U8:
    url = f"{platform.media}/app/{name}/ts:abr.m3u8"

    def listed():
        response = get(url)
        playlist = m3u8.loads(response.text, uri=url) if response else None
        return playlist if playlist and len(playlist.playlists) == count else None

    logs = lambda: platform.log("worker")[-4000:] + platform.log("engine")[-2000:]  # noqa: E731
    return wait_for(listed, 90, logs, interval=0.5)


def stats(platform, name: str) -> dict:
    return platform.api("GET", f"/v1/stats/current/vhosts/default/apps/app/streams/{name}").json()["response"]


def picture(data: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def test_a_profile_makes_abr_renditions_a_master_playlist_and_thumbnails(live_platform, clip, browser_page):
    publisher = publish(live_platform, clip, "cam")
    try:
        master = master_variants(live_platform, "cam", 2)
        by_height = {variant.stream_info.resolution[1]: variant for variant in master.playlists}
        assert sorted(by_height) == [360, 720]
        # BANDWIDTH: the configured video + audio bitrates; RESOLUTION from the renditions' SPS.
        assert by_height[720].stream_info.bandwidth == 1200000 + 64000
        assert by_height[360].stream_info.bandwidth == 300000 + 64000
        assert by_height[720].stream_info.resolution == (1280, 720)
        assert by_height[360].stream_info.resolution == (640, 360)
        for variant in master.playlists:
            video_codec, audio_codec = variant.stream_info.codecs.split(",")
            assert video_codec.startswith("avc1.") and audio_codec == "mp4a.40.2"

        # Each variant is HLS that ffprobe reads at its size, and its own stream over RTMP.
        for height, variant in by_height.items():
            hls = codecs(ffprobe(variant.absolute_uri))
            assert (hls["video"]["codec_name"], hls["video"]["height"]) == ("h264", height)
            assert (hls["audio"]["codec_name"], int(hls["audio"]["sample_rate"])) == ("aac", 48000)
        assert variant.absolute_uri.endswith(("/app/cam_720p/playlist.m3u8", "/app/cam_360p/playlist.m3u8"))
        # The same playlist as LL-HLS: the renditions' chunklists.
        llhls = m3u8.loads(get(f"{live_platform.media}/app/cam/abr.m3u8").text)
        assert sorted(v.stream_info.resolution for v in llhls.playlists) == [(640, 360), (1280, 720)]
        assert all(v.uri.startswith(("../cam_720p/chunklist_", "../cam_360p/chunklist_")) for v in llhls.playlists)
        rtmp = codecs(ffprobe(f"{live_platform.rtmp}/app/cam_360p"))
        assert (rtmp["video"]["width"], rtmp["video"]["height"]) == (640, 360)

        # The OME API: renditions are outputs of the input stream, not streams of their own.
        assert live_names(live_platform) == ["cam"]
        info = live_platform.api("GET", f"{APP}/streams/cam").json()["response"]
        outputs = {output["name"]: output for output in info["outputs"]}
        assert set(outputs) == {"cam", "cam_720p", "cam_360p"}
        video = next(t["video"] for t in outputs["cam_360p"]["tracks"] if t["type"] == "Video")
        assert (video["codec"], video["width"], video["height"], video["bypass"]) == ("H264", 640, 360, False)

        # Its CPU cost: one transcode (bypass_profile and the shipped profile start none).
        cost = wait_for(lambda: (s := stats(live_platform, "cam")["transcoding"])["cpuTime"] > 0 and s, 20)
        assert cost["jobs"] == 1 and cost["cpuUsage"] > 0
        vhost_cost = live_platform.api("GET", "/v1/stats/current/vhosts/default").json()["response"]["transcoding"]
        assert vhost_cost["jobs"] == 1

        # Thumbnails at their sizes, refreshed while live.
        jpeg = wait_for(lambda: get(f"{live_platform.media}/app/cam/thumb.jpg"), 20)
        assert jpeg.headers["Content-Type"] == "image/jpeg" and picture(jpeg.content) == (160, 90)
        png = wait_for(lambda: get(f"{live_platform.media}/app/cam/thumb.png"), 20)
        assert png.headers["Content-Type"] == "image/png" and picture(png.content) == (96, 54)
        wait_for(
            lambda: (later := get(f"{live_platform.media}/app/cam/thumb.jpg")) and later.content != jpeg.content, 20
        )

        # hls.js in Chromium plays the master playlist, then switches to the other rendition.
        hls_js = f"{live_platform.url}/static/streams/vendor/hls.js/hls.min.js"
        master_url = f"{live_platform.media}/app/cam/ts:abr.m3u8"
        browser_page.set_content(PLAYER.format(hls_js=hls_js, master=master_url))
        browser_page.wait_for_function("() => player.currentTime > 1 && player.videoHeight > 0", timeout=60_000)
        heights = browser_page.evaluate("() => hls.levels.map(level => level.height)")
        assert sorted(heights) == [360, 720]
        playing = browser_page.evaluate("() => player.videoHeight")
        other = heights.index(720 if playing == 360 else 360)
        browser_page.evaluate(f"() => {{ hls.currentLevel = {other}; }}")
        browser_page.wait_for_function(
            f"() => window.switches.includes({other}) && player.videoHeight === {heights[other]}", timeout=60_000
        )
        start = browser_page.evaluate("() => player.currentTime")
        browser_page.wait_for_function(f"() => player.currentTime > {start} + 1", timeout=30_000)
        browser_page.screenshot(path=str(ARTIFACTS / "transcoding-abr-player.png"))
    finally:
        publisher.terminate()
        publisher.wait(10)

    # The stream ended: the transcode stops, its renditions and thumbnails go.
    vhost_stats = "/v1/stats/current/vhosts/default"
    wait_for(lambda: live_platform.api("GET", vhost_stats).json()["response"]["transcoding"]["jobs"] == 0, 30)
    wait_for(lambda: live_names(live_platform) == [], 30, lambda: str(live_names(live_platform)))
    assert live_platform.api("GET", f"{APP}/streams/cam_360p").status_code == 404
    assert get(f"{live_platform.media}/app/cam/thumb.jpg") is None
    assert requests.get(f"{live_platform.media}/app/cam/ts:abr.m3u8", timeout=10).status_code == 404
