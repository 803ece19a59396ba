"""Media jobs on protected streams, with the real stack: an application signs RTMP publish and play,
ffmpeg publishes with a signed URL, and the platform's own jobs still record it (ffprobe judges the
MP4), push it to nginx-rtmp, pull it back in, dump its LL-HLS and snapshot an ACL'd stream, with internal job tokens
that outsiders cannot forge and that show nowhere: not in API answers, rows or logs."""

from __future__ import annotations

import base64
import re
import subprocess
import time

import pytest
import requests

from media_engine.admission import make_policy, sign_url
from tests.integration.conftest import LiveStreamHub, wait_for
from tests.integration.test_engine import codecs, ffprobe, publish

pytestmark = pytest.mark.services

SECRET = "job-policy-secret-1"
ACL_KEY = "job-acl-key-1"
SECURE = "/v1/vhosts/default/apps/secure"
LLHLS = {"hls": {"segmentDuration": 1}, "llhls": {"chunkDuration": 0.5, "segmentDuration": 1}}
# What a job token looks like (media_engine.internal_auth): none may show anywhere.
TOKEN = re.compile(r"shjob=(?!\*\*\*)|v1\.\d{9,}\.[A-Za-z0-9_-]{20,}")
# Every row the platform stored, as text (job rows, their errors and files, streams...).
DUMP_ROWS = (
    "from django.apps import apps\n"
    "from django.db import connection\n"
    "tables = set(connection.introspection.table_names())\n"
    "for model in apps.get_models():\n"
    "    if model._meta.db_table in tables:\n"
    "        print(model.__name__, list(model.objects.values()))\n"
)


@pytest.fixture(scope="module")
def platform(tmp_path_factory, redis_url):
    server = LiveStreamHub(tmp_path_factory.mktemp("access-jobs"), redis_url)
    server.start(engine=True, worker=True)
    assert server.api("POST", "/v1/vhosts/default/apps", json=[{"name": "secure", "type": "live"}]).status_code == 200
    # RTMP publish and RTMP play signed: what used to lock every media job out.
    policy = {"secretKey": SECRET, "enables": {"providers": "rtmp", "publishers": "rtmp,hls,llhls"}}
    update = f"A.objects.filter(name='secure').update(signed_policy={policy!r}, publishers={LLHLS!r})"
    server.manage("shell", "-c", f"from apps.hosting.models import Application as A\n{update}\n")
    time.sleep(2.5)  # the engine's application cache
    yield server
    server.stop()
    for name in ("engine", "worker", "api"):
        assert_no_token(server.log(name), name)


def assert_no_token(text: str, where: str) -> None:
    found = TOKEN.search(text)
    assert found is None, f"a job token in {where}: ...{text[max(0, found.start() - 200) : found.end() + 50]}..."


def signed(platform, path: str, expires_in: float = 600) -> str:
    return sign_url(f"{platform.rtmp}/{path}", SECRET, make_policy(int((time.time() + expires_in) * 1000)))


def publish_signed(platform, name: str, seconds: float) -> subprocess.Popen:
    url = signed(platform, f"secure/{name}")
    return publish(platform, url[len(f"{platform.rtmp}/secure/") :], seconds=seconds, app="secure")


def live(platform, app: str) -> list[str]:
    return platform.api("GET", f"/v1/vhosts/default/apps/{app}/streams").json().get("response") or []


def probe_fails(url: str) -> bool:
    result = subprocess.run(["ffprobe", "-v", "error", "-rw_timeout", "10000000", url], capture_output=True, timeout=60)
    return result.returncode != 0


def job(platform, kind: str, job_id: str) -> dict:
    response = platform.api("POST", f"{SECURE}:{kind}", json={"id": job_id})
    assert response.status_code == 200, response.text
    assert_no_token(response.text, f":{kind}")
    [row] = response.json()["response"]
    return row


def test_record_push_and_pull_of_a_signed_stream_that_outsiders_cannot_play(platform, nginx_rtmp):
    publisher = publish_signed(platform, "cam", seconds=90)
    try:
        wait_for(lambda: "cam" in live(platform, "secure"), 20, lambda: platform.log("engine")[-2000:])
        # Outsiders: no signature, or a made-up job token, plays nothing.
        plain = f"{platform.rtmp}/secure/cam"
        assert probe_fails(plain)
        assert probe_fails(f"{plain}?shjob=v1.9999999999.{'A' * 43}")
        assert codecs(ffprobe(signed(platform, "secure/cam")))["video"]["codec_name"] == "h264"

        record = {"id": "secure-rec", "stream": {"name": "cam"}, "filePath": "secure/${Id}.mp4"}
        assert platform.api("POST", f"{SECURE}:startRecord", json=record).status_code == 200
        push = {
            "id": "secure-push",
            "stream": {"name": "cam"},
            "protocol": "rtmp",
            "url": nginx_rtmp,
            "streamKey": "cam",
        }
        assert platform.api("POST", f"{SECURE}:startPush", json=push).status_code == 200
        wait_for(lambda: job(platform, "records", "secure-rec")["state"] == "recording", 30,
                 lambda: f"{job(platform, 'records', 'secure-rec')}\n{platform.log('worker')[-3000:]}")  # fmt: skip
        wait_for(lambda: job(platform, "pushes", "secure-push")["state"] == "started", 30,
                 lambda: f"{job(platform, 'pushes', 'secure-push')}\n{platform.log('worker')[-3000:]}")  # fmt: skip

        pushed = codecs(ffprobe(f"{nginx_rtmp}/cam"))
        assert (pushed["video"]["codec_name"], pushed["video"]["width"]) == ("h264", 640)
        # A pull (of the signed stream, with a signed URL) publishes into the signed application.
        source = signed(platform, "secure/cam")
        pull = {"name": "pulled", "urls": [source], "properties": {"unusedStreamDeletionTimeoutMs": 0}}
        response = platform.api("POST", f"{SECURE}/streams", json=pull, timeout=40)
        assert response.status_code == 201, f"{response.text}\n{platform.log('worker')[-3000:]}"
        # A player that comes in before the pull's first keyframe sees audio only: ask again.
        video = wait_for(lambda: codecs(ffprobe(signed(platform, "secure/pulled"))).get("video"), 30)
        assert (video["codec_name"], video["width"]) == ("h264", 640)
        assert probe_fails(f"{platform.rtmp}/secure/pulled")
        assert platform.api("DELETE", f"{SECURE}/streams/pulled").status_code == 200

        wait_for(lambda: job(platform, "records", "secure-rec")["recordTime"] >= 3000, 30)
        for kind, job_id in (("Record", "secure-rec"), ("Push", "secure-push")):
            assert platform.api("POST", f"{SECURE}:stop{kind}", json={"id": job_id}).status_code == 200
        recorded = wait_for(lambda: (r := job(platform, "records", "secure-rec"))["state"] == "stopped" and r, 20)
        wait_for(lambda: job(platform, "pushes", "secure-push")["state"] == "stopped", 20)
        assert job(platform, "pushes", "secure-push")["totalsentBytes"] > 0
    finally:
        publisher.kill()
        publisher.wait()

    path = platform.folder / "media" / "secure" / "secure-rec.mp4"
    probe = ffprobe(str(path))
    assert float(probe["format"]["duration"]) >= 3.0
    assert {"video", "audio"} <= set(codecs(probe))
    assert recorded["totalRecordBytes"] == path.stat().st_size
    assert_no_token(platform.manage("shell", "-c", DUMP_ROWS).stdout, "the database")
    # The record logged its source URL, with the token hidden.
    assert "record of rtmp://127.0.0.1:" in platform.log("worker") and "/secure/cam?shjob=***" in platform.log("worker")


def test_a_wcs_snapshot_of_a_stream_with_acl_keys(platform, tmp_path):
    publisher = publish(platform, "aclsnap", seconds=60)
    try:
        wait_for(lambda: "aclsnap" in live(platform, "app"), 20)
        access_list = f"{platform.url}/rest-api/cdn/stream/access_list/add"
        assert requests.post(access_list, json={"name": "aclsnap", "keys": [ACL_KEY]}, timeout=10).status_code == 200
        rtmp = f"{platform.rtmp}/app/aclsnap"
        wait_for(lambda: probe_fails(rtmp), 20)  # the engine has the keys (its configuration cache)
        response = requests.post(f"{platform.url}/rest-api/stream/snapshot", json={"streamName": "aclsnap"}, timeout=30)
        assert response.status_code == 200, f"{response.text}\n{platform.log('worker')[-3000:]}"
        assert_no_token(response.text, "/stream/snapshot")
        picture = tmp_path / "aclsnap.jpg"
        picture.write_bytes(base64.b64decode(response.json()["data"]))
        video = codecs(ffprobe(str(picture)))["video"]
        assert (video["codec_name"], video["width"], video["height"]) == ("mjpeg", 640, 360)
        assert probe_fails(rtmp)  # still locked for everyone else
    finally:
        publisher.kill()
        publisher.wait()


def test_an_hls_dump_of_a_signed_stream(platform):
    publisher = publish_signed(platform, "dumped", seconds=60)
    folder = platform.folder / "media" / "dumps" / "dumped"
    try:
        wait_for(lambda: "dumped" in live(platform, "secure"), 20)
        assert requests.get(f"{platform.media}/secure/dumped/llhls.m3u8", timeout=15).status_code == 403
        body = {"outputStreamName": "dumped", "id": "secure-dump", "outputPath": "dumps/dumped"}
        response = platform.api("POST", f"{SECURE}/streams/dumped:startHlsDump", json=body)
        assert response.status_code == 200, response.text
        wait_for(lambda: len(list(folder.glob("seg_*.m4s"))) >= 3, 40, lambda: platform.log("worker")[-3000:])
        stop = {"outputStreamName": "dumped", "id": "secure-dump"}
        assert platform.api("POST", f"{SECURE}/streams/dumped:stopHlsDump", json=stop).status_code == 200
    finally:
        publisher.kill()
        publisher.wait()
    # The dump holds the files as the playlists name them: no session or token in a name or playlist.
    names = sorted(path.name for path in folder.iterdir())
    assert not any("?" in name or "session" in name for name in names), names
    [chunklist] = [folder / name for name in names if name.startswith("chunklist")]
    assert "session=" not in chunklist.read_text()
    assert_no_token(chunklist.read_text(), chunklist.name)
    assert codecs(ffprobe(str(chunklist)))["video"]["codec_name"] == "h264"


def test_a_transcode_of_a_signed_stream_publishes_its_rendition_back(platform):
    profile = {
        "name": "low",
        "outputStreamName": "${OriginStreamName}_low",
        "encodes": {
            "videos": [{"name": "v180", "codec": "h264", "bitrate": 200000, "height": 180, "preset": "ultrafast"}],
            "audios": [{"bypass": True}],
        },
    }
    response = platform.api("POST", f"{SECURE}/outputProfiles", json=[profile])
    assert response.status_code == 200, response.text
    publisher = publish_signed(platform, "tc", seconds=60)
    try:
        # The rendition is a stream of its own, named after the profile's output and the encoding.
        rendition = signed(platform, "secure/tc_low_v180")
        video = wait_for(lambda: not probe_fails(rendition) and codecs(ffprobe(rendition)).get("video"), 60,
                         lambda: platform.log("worker")[-3000:])  # fmt: skip
        assert (video["codec_name"], video["height"]) == ("h264", 180)
        assert probe_fails(f"{platform.rtmp}/secure/tc_low_v180")
    finally:
        publisher.kill()
        publisher.wait()
        platform.api("DELETE", f"{SECURE}/outputProfiles/low")
