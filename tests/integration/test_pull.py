"""OME "Create Stream (Pull)" with the real stack: a Celery worker pulls GStreamer's RTSP server
into the engine; the pulled stream plays over HLS and RTMP, is recorded, fails over to the next
URL, is deleted by DELETE or when nobody watches, and unreachable URLs answer 502."""

from __future__ import annotations

import subprocess
import time

import pytest
import requests

from tests.integration.conftest import wait_for
from tests.integration.test_engine import codecs, ffprobe, live_names

pytestmark = pytest.mark.services
APP = "/v1/vhosts/default/apps/app"
STREAMS = f"{APP}/streams"


def create_pull(platform, name: str, urls: list[str], **properties):
    body = {"name": name, "urls": urls}
    if properties:
        body["properties"] = properties
    return platform.api("POST", STREAMS, json=body, timeout=40)


def stream_info(platform, name: str) -> dict:
    return platform.api("GET", f"{STREAMS}/{name}").json()["response"]


def test_an_rtsp_pull_is_a_live_stream_that_plays_records_and_deletes(live_platform, rtsp_source):
    camera = rtsp_source()
    response = create_pull(live_platform, "cam", [camera.url], persistent=False, unusedStreamDeletionTimeoutMs=0)
    assert response.status_code == 201, live_platform.log("api")[-3000:]
    assert response.json() == {"message": "Created", "statusCode": 201}
    assert "cam" in live_names(live_platform), live_platform.log("worker")[-3000:] + live_platform.log("engine")[-3000:]
    info = wait_for(lambda: (i := stream_info(live_platform, "cam"))["input"]["tracks"] and i, 10)
    assert info["input"]["sourceType"] == "RtspPull"
    video = next(track["video"] for track in info["input"]["tracks"] if track["type"] == "Video")
    assert (video["codec"], video["width"], video["height"]) == ("H264", 640, 360)
    # A second pull of the same name is a conflict.
    assert create_pull(live_platform, "cam", [camera.url]).status_code == 409

    # HLS and RTMP play, judged by ffprobe.
    hls = codecs(ffprobe(f"{live_platform.media}/app/cam/ts:playlist.m3u8"))
    assert hls["video"]["codec_name"] == "h264" and hls["video"]["width"] == 640
    assert hls["audio"]["codec_name"] == "aac"
    assert codecs(ffprobe(f"{live_platform.rtmp}/app/cam"))["video"]["height"] == 360

    # A record of the pulled stream.
    body = {"id": "camrec", "stream": {"name": "cam"}, "filePath": "pulled/${Id}.mp4"}
    assert live_platform.api("POST", f"{APP}:startRecord", json=body).status_code == 200

    def record():
        return live_platform.api("POST", f"{APP}:records", json={"id": "camrec"}).json()["response"][0]

    wait_for(lambda: record()["recordTime"] >= 3000, 30, lambda: live_platform.log("worker")[-3000:])
    assert live_platform.api("POST", f"{APP}:stopRecord", json={"id": "camrec"}).status_code == 200
    wait_for(lambda: record()["state"] == "stopped", 15)
    recorded = codecs(ffprobe(str(live_platform.folder / "media" / "pulled" / "camrec.mp4")))
    assert recorded["video"]["width"] == 640 and recorded["audio"]["codec_name"] == "aac"

    # DELETE ends the pull: the stream is gone and does not come back.
    assert live_platform.api("DELETE", f"{STREAMS}/cam").status_code == 200
    wait_for(lambda: "cam" not in live_names(live_platform), 15)
    time.sleep(3)
    assert "cam" not in live_names(live_platform)


def test_failover_to_the_next_url_keeps_the_stream(live_platform, rtsp_source):
    first, second = rtsp_source(), rtsp_source()
    response = create_pull(live_platform, "failover", [first.url, second.url], noInputFailoverTimeoutMs=1500)
    assert response.status_code == 201
    created = stream_info(live_platform, "failover")["input"]["createdTime"]
    first.stop()
    time.sleep(6)  # silence, failover, a few seconds from the second camera
    # The same stream (not a new publication) goes on, fed by the second URL.
    assert stream_info(live_platform, "failover")["input"]["createdTime"] == created
    assert codecs(ffprobe(f"{live_platform.rtmp}/app/failover"))["video"]["width"] == 640
    assert live_platform.api("DELETE", f"{STREAMS}/failover").status_code == 200


def test_unreachable_urls_are_502_and_free_the_name(live_platform):
    urls = ["rtsp://127.0.0.1:1/nothing", "rtsp://127.0.0.1:2/nothing"]
    for _ in range(2):
        response = create_pull(live_platform, "unreachable", urls)
        assert response.status_code == 502
        assert response.json() == {"statusCode": 502, "message": "[HTTP] Failed to pull provided URL (502)"}
    assert "unreachable" not in live_names(live_platform)


def test_an_unused_pulled_stream_is_deleted(live_platform, rtsp_source):
    camera = rtsp_source()
    assert create_pull(live_platform, "unused", [camera.url], unusedStreamDeletionTimeoutMs=2000).status_code == 201
    wait_for(lambda: "unused" not in live_names(live_platform), 15)


def publish_to_nginx(nginx_rtmp: str, video_delay: float = 0) -> subprocess.Popen:
    """ffmpeg publishes to nginx-rtmp; its video starts ``video_delay`` seconds after its audio."""
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-itsoffset", str(video_delay), "-f", "lavfi",
         "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi",
         "-i", "sine", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-t", "40", "-f", "flv", f"{nginx_rtmp}/origin"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def first_segment(platform, name: str) -> str:
    """The URL of the first segment of the stream's first HLS playlist."""
    playlist = f"{platform.media}/app/{name}/ts:playlist.m3u8"
    answer = wait_for(lambda: (r := requests.get(playlist, timeout=10)).status_code == 200 and r, 20)
    segment = next(line for line in answer.text.splitlines() if line and not line.startswith("#"))
    return f"{platform.media}/app/{name}/{segment}"


def assert_pulled_with_every_track(platform, name: str, response) -> None:
    """What a client sees once the pull answered: its tracks, and an HLS output that carries them all
    from the first segment on (video from a keyframe)."""
    assert response.status_code == 201, platform.log("api")[-3000:]
    info = stream_info(platform, name)
    assert info["input"]["sourceType"] == "RtmpPull"
    assert sorted(track["type"] for track in info["input"]["tracks"]) == ["Audio", "Video"], info
    segment = first_segment(platform, name)
    first = codecs(ffprobe(segment))
    assert first["video"]["width"] == 320 and first["audio"]["codec_name"] == "aac", platform.log("engine")[-3000:]
    frames = ffprobe(segment, "-select_streams", "v", "-show_frames", "-read_intervals", "%+#1")["frames"]
    assert frames[0]["key_frame"] == 1
    assert codecs(ffprobe(f"{platform.media}/app/{name}/ts:playlist.m3u8"))["video"]["width"] == 320


def test_an_rtmp_pull_of_another_server(live_platform, nginx_rtmp):
    # nginx-rtmp is the origin: ffmpeg publishes there, StreamHub pulls it.
    publisher = publish_to_nginx(nginx_rtmp)
    try:
        time.sleep(2)
        response = create_pull(live_platform, "fromnginx", [f"{nginx_rtmp}/origin"], unusedStreamDeletionTimeoutMs=0)
        assert_pulled_with_every_track(live_platform, "fromnginx", response)
        assert live_platform.api("DELETE", f"{STREAMS}/fromnginx").status_code == 200
    finally:
        publisher.kill()


def test_an_rtmp_pull_of_a_source_whose_video_starts_late_gets_every_track(live_platform, nginx_rtmp):
    # The source announces video and audio but sends its first video frame 3 s after its audio (as
    # an encoder starting up does: under `make test`'s load, the pull above joined its source at
    # such a moment and published audio only). The pull answers once both tracks are known, and its
    # HLS carries both from the first segment on.
    publisher = publish_to_nginx(nginx_rtmp, video_delay=3)
    try:
        response = create_pull(live_platform, "late", [f"{nginx_rtmp}/origin"], unusedStreamDeletionTimeoutMs=0)
        assert_pulled_with_every_track(live_platform, "late", response)
        assert live_platform.api("DELETE", f"{STREAMS}/late").status_code == 200
    finally:
        publisher.kill()
