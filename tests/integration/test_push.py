"""Push with the real stack: a Celery worker re-publishes a live stream to nginx-rtmp, to another
StreamHub application and as MPEG-TS over UDP; ffprobe checks what arrives."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from tests.integration.conftest import free_port, wait_for
from tests.integration.test_engine import codecs, ffprobe, publish, wait_live

pytestmark = pytest.mark.services
APP = "/v1/vhosts/default/apps/app"


def push_state(platform, push_id: str) -> dict:
    [push] = platform.api("POST", f"{APP}:pushes", json={"id": push_id}).json()["response"]
    return push


def test_a_reserved_push_reaches_nginx_rtmp_and_another_app(live_platform, nginx_rtmp):
    live_platform.api("POST", "/v1/vhosts/default/apps", json=[{"name": "relay", "type": "live"}])
    for push_id, url, key in (
        ("to-nginx", nginx_rtmp, "copy"),
        ("to-relay", f"{live_platform.rtmp}/relay", "copy"),
    ):
        body = {"id": push_id, "stream": {"name": "source"}, "protocol": "rtmp", "url": url, "streamKey": key}
        response = live_platform.api("POST", f"{APP}:startPush", json=body)
        assert response.status_code == 200 and response.json()["response"]["state"] == "ready"

    publisher = publish(live_platform, "source", seconds=40)
    try:
        wait_live(live_platform, "source", publisher)
        for push_id in ("to-nginx", "to-relay"):
            wait_for(lambda p=push_id: push_state(live_platform, p)["state"] == "started", 30,
                     lambda: live_platform.log("worker"))  # fmt: skip
        relay_streams = "/v1/vhosts/default/apps/relay/streams"
        wait_for(lambda: "copy" in live_platform.api("GET", relay_streams).json()["response"], 40,
                 lambda: f"{push_state(live_platform, 'to-relay')}\n{live_platform.log('engine')[-3000:]}")  # fmt: skip
        for url in (f"{nginx_rtmp}/copy", f"{live_platform.rtmp}/relay/copy"):
            streams = codecs(ffprobe(url))
            assert streams["video"]["codec_name"] == "h264" and streams["video"]["width"] == 640
            assert streams["audio"]["codec_name"] == "aac"
        wait_for(lambda: push_state(live_platform, "to-nginx")["totalsentBytes"] > 0, 20)
        for push_id in ("to-nginx", "to-relay"):
            assert live_platform.api("POST", f"{APP}:stopPush", json={"id": push_id}).status_code == 200
            wait_for(lambda p=push_id: push_state(live_platform, p)["state"] == "stopped", 20)
    finally:
        publisher.kill()


def test_mpegts_over_udp_arrives(live_platform):
    port = free_port()
    listener = subprocess.Popen(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", "-analyzeduration", "3000000",
         f"udp://127.0.0.1:{port}?timeout=20000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    publisher = publish(live_platform, "tsout", seconds=40)
    try:
        wait_live(live_platform, "tsout", publisher)
        body = {"id": "udp", "stream": {"name": "tsout"}, "protocol": "mpegts", "url": f"udp://127.0.0.1:{port}"}
        assert live_platform.api("POST", f"{APP}:startPush", json=body).status_code == 200
        out, err = listener.communicate(timeout=40)
        assert listener.returncode == 0, err
        kinds = {stream["codec_type"]: stream["codec_name"] for stream in json.loads(out)["streams"]}
        assert kinds == {"video": "h264", "audio": "aac"}
        live_platform.api("POST", f"{APP}:stopPush", json={"id": "udp"})
    finally:
        publisher.kill()
        listener.kill()


def test_srt_push_arrives(live_platform):
    # The spec's SRT body (caller mode); an ffprobe SRT listener is the receiver.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listener = subprocess.Popen(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", f"srt://127.0.0.1:{port}?mode=listener"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    publisher = publish(live_platform, "srtout", seconds=40)
    try:
        wait_live(live_platform, "srtout", publisher)
        body = {"id": "srt", "stream": {"name": "srtout", "variantNames": []}, "protocol": "srt",
                "url": f"srt://127.0.0.1:{port}?mode=caller&latency=120000&timeout=500000", "streamKey": ""}  # fmt: skip
        assert live_platform.api("POST", f"{APP}:startPush", json=body).status_code == 200
        out, err = listener.communicate(timeout=40)
        assert listener.returncode == 0, err
        kinds = {stream["codec_type"]: stream["codec_name"] for stream in json.loads(out)["streams"]}
        assert kinds == {"video": "h264", "audio": "aac"}
        wait_for(lambda: push_state(live_platform, "srt")["totalsentBytes"] > 0, 20)
        live_platform.api("POST", f"{APP}:stopPush", json={"id": "srt"})
        wait_for(lambda: push_state(live_platform, "srt")["state"] == "stopped", 20)
    finally:
        publisher.kill()
        listener.kill()


def test_a_push_whose_target_is_down_says_it_is_retrying(live_platform):
    dead = free_port()
    publisher = publish(live_platform, "lonely", seconds=40)
    try:
        wait_live(live_platform, "lonely", publisher)
        body = {"id": "dead", "stream": {"name": "lonely"}, "protocol": "rtmp",
                "url": f"rtmp://127.0.0.1:{dead}/live", "streamKey": "x"}  # fmt: skip
        live_platform.api("POST", f"{APP}:startPush", json=body)
        state = wait_for(lambda: (p := push_state(live_platform, "dead"))["state"] == "retrying" and p, 15,
                         lambda: live_platform.log("worker"))  # fmt: skip
        assert state["error"]
        live_platform.api("POST", f"{APP}:stopPush", json={"id": "dead"})
        wait_for(lambda: push_state(live_platform, "dead")["state"] == "stopped", 10)
    finally:
        publisher.kill()
