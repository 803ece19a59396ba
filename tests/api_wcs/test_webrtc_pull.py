"""WCS /pull/pull, /pull/push, /pull/find_all, /pull/terminate: WebRTC relays with another node.

Without media: bad bodies are 400, conflicts 409, finds of nothing 404, and nothing is stored.
With media: the platform's engine pulls a stream from another engine node's WHEP URL (ffprobe reads
it from the platform over RTMP) and pushes a stream to that node's WHIP URL (ffprobe reads it there).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from apps.engine.models import EngineNode
from apps.hosting.models import Application
from apps.streams.models import Stream
from apps.webrtc_relay.models import WebRtcRelay
from tests.integration.conftest import LiveStreamHub, redis_url, wait_for  # noqa: F401 (fixture)
from tests.integration.test_engine import codecs, ffprobe, live_names
from tests.media_engine.webrtc.conftest import ffmpeg_publish

API = "/rest-api"
NODE_SCRIPT = Path(__file__).resolve().parents[1] / "media_engine" / "webrtc" / "node_process.py"


@pytest.mark.django_db
def test_bad_requests_are_refused_and_store_nothing(wcs):
    assert wcs.post(f"{API}/pull/pull", {"uri": "http://127.0.0.1:1/app/x"}).status_code == 400  # no local name
    response = wcs.post(f"{API}/pull/pull", {"uri": "rtmp://127.0.0.1/app/x", "localStreamName": "x"})
    assert response.status_code == 400 and "http(s)" in response.json()["message"]
    # No engine node runs: nothing can pull.
    response = wcs.post(f"{API}/pull/pull", {"uri": "http://127.0.0.1:1/app/x", "localStreamName": "x"})
    assert (response.status_code, response.json()["message"]) == (409, "Conflict: no engine node is running")
    response = wcs.post(f"{API}/pull/push", {"uri": "http://127.0.0.1:1/app/x", "localStreamName": "offline"})
    assert (response.status_code, response.json()["message"]) == (404, "Stream not found")
    assert wcs.post(f"{API}/pull/push", {"uri": "http://127.0.0.1:1/app/x"}).status_code == 400
    assert wcs.post(f"{API}/pull/find_all").status_code == 404
    assert wcs.post(f"{API}/pull/terminate", {"localStreamName": "x"}).status_code == 404
    assert not WebRtcRelay.objects.exists()


@pytest.mark.django_db
def test_a_pull_into_a_live_name_is_a_conflict(wcs):
    node = EngineNode.objects.create(node_id="n1", hostname="h", rtmp_port=1935, media_http_port=3333)
    Stream.objects.create(application=Application.objects.get(name="app"), name="busy", node=node)
    response = wcs.post(f"{API}/pull/pull", {"uri": "http://127.0.0.1:1/app/x", "localStreamName": "busy"})
    assert response.status_code == 409
    assert not WebRtcRelay.objects.exists()


@pytest.fixture(scope="module")
def other_node():
    """A second engine node (no Django) on its own ports: the remote end of the relays."""
    process = subprocess.Popen(
        [sys.executable, str(NODE_SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    ready = process.stdout.readline().split()
    assert ready[:1] == ["ready"], ready
    yield {"rtmp": f"rtmp://127.0.0.1:{ready[1]}", "media": f"http://127.0.0.1:{ready[2]}"}
    process.kill()
    process.wait()


@pytest.fixture(scope="module")
def relay_platform(tmp_path_factory, redis_url):  # noqa: F811
    server = LiveStreamHub(tmp_path_factory.mktemp("relays"), redis_url)
    server.env["STREAMHUB_WEBRTC_ICE_ADDRESSES"] = "127.0.0.1"
    server.start(engine=True)
    yield server
    server.stop()


def relays(platform) -> list[dict]:
    response = requests.post(f"{platform.url}{API}/pull/find_all", json={}, timeout=10)
    return response.json() if response.status_code == 200 else []


@pytest.mark.services
def test_pull_from_and_push_to_another_node(relay_platform, other_node):
    remote_source = ffmpeg_publish(f"{other_node['rtmp']}/app/origin", seconds=60)
    local_source = ffmpeg_publish(f"{relay_platform.rtmp}/app/local", seconds=60, size="480x270")
    try:
        wait_for(lambda: "local" in live_names(relay_platform), 20)
        # Pull: the other node's stream (its WHEP URL: application URL + remoteStreamName) into "pulled".
        body = {"uri": f"{other_node['media']}/app", "remoteStreamName": "origin", "localStreamName": "pulled"}
        response = requests.post(f"{relay_platform.url}{API}/pull/pull", json=body, timeout=10)
        assert response.status_code == 200, response.text
        pull_id = response.json()["localMediaSessionId"]
        wait_for(
            lambda: any(r["localMediaSessionId"] == pull_id and r["status"] == "PUBLISHING" for r in relays(relay_platform)),
            30, lambda: str(relays(relay_platform)) + relay_platform.log("engine")[-3000:],
        )  # fmt: skip
        wait_for(lambda: "pulled" in live_names(relay_platform), 20)
        pulled = codecs(ffprobe(f"{relay_platform.rtmp}/app/pulled"))
        assert (pulled["video"]["codec_name"], pulled["video"]["width"]) == ("h264", 320)
        assert pulled["audio"]["codec_name"] == "aac"
        info = relay_platform.api("GET", "/v1/vhosts/default/apps/app/streams/pulled").json()["response"]
        assert info["input"]["sourceType"] == "WebRTC"
        # The same local name again is a conflict.
        again = requests.post(f"{relay_platform.url}{API}/pull/pull", json=body, timeout=10)
        assert again.status_code == 409

        # Push: the local stream to the other node's WHIP URL.
        body = {"uri": f"{other_node['media']}/app/pushed", "localStreamName": "local"}
        response = requests.post(f"{relay_platform.url}{API}/pull/push", json=body, timeout=10)
        assert response.status_code == 200, response.text
        pushed = codecs(wait_for(lambda: _probe(f"{other_node['rtmp']}/app/pushed"), 30))
        assert (pushed["video"]["codec_name"], pushed["video"]["width"]) == ("h264", 480)
        assert pushed["audio"]["codec_name"] == "aac"

        # Terminate by local stream name ends the pull: its stream is gone.
        response = requests.post(f"{relay_platform.url}{API}/pull/terminate", json={"localStreamName": "pulled"}, timeout=10)  # fmt: skip
        assert response.status_code == 200
        wait_for(lambda: "pulled" not in live_names(relay_platform), 20)
        assert [r["localStreamName"] for r in relays(relay_platform)] == ["local"]
    finally:
        remote_source.kill()
        local_source.kill()


def _probe(url: str) -> dict | None:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-rw_timeout", "5000000", "-show_streams", "-of", "json", url],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)
