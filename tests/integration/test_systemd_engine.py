"""What streamhub-engine.service runs (`scripts/media_front.py --exec-engine`, deploy/systemd) starts a real
engine node: with STREAMHUB_MEDIA_HTTP_FRONT=off it serves the media port itself and takes RTMP publishes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from tests.integration.conftest import ROOT, LiveStreamHub, _answers, wait_for
from tests.integration.test_engine import publish, wait_live

pytestmark = pytest.mark.services


def test_the_engine_unit_with_the_front_off_serves_the_media_port_itself(tmp_path, redis_url):
    hub = LiveStreamHub(tmp_path, redis_url)
    hub.start()  # the API (for the stream check) and the migrated database the engine reports to
    hub.env.update(
        {
            "STREAMHUB_MEDIA_HTTP_FRONT": "off",
            "STREAMHUB_MEDIA_HTTP_HOST": "127.0.0.1",
            "STREAMHUB_MEDIA_HTTP_PORT": str(hub.media_port),
            "STREAMHUB_RTMP_HOST": "127.0.0.1",
            "STREAMHUB_RTMP_PORT": str(hub.rtmp_port),
        }
    )
    with open(tmp_path / "engine.log", "ab") as log:
        engine = subprocess.Popen(
            [sys.executable, "scripts/media_front.py", "--exec-engine"],
            cwd=ROOT, env=hub.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    publisher = None
    try:
        wait_for(lambda: _answers(f"{hub.media}/"), 60, lambda: (tmp_path / "engine.log").read_text())
        publisher = publish(hub, "cam")
        wait_live(hub, "cam", publisher)
        playlist = requests.get(f"{hub.media}/app/cam/ts:playlist.m3u8", timeout=20)
        assert playlist.status_code == 200 and "#EXTM3U" in playlist.text
    finally:
        if publisher is not None:
            publisher.kill()
        engine.terminate()
        engine.wait(30)
        hub.stop()
