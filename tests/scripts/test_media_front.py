"""`make run`'s nginx front (scripts/media_front.py): the shipped cache tier's configuration rendered for the
front passes `nginx -t` with the front's token and viewer log; the front is off when asked or without nginx; run
as a program (the systemd unit), it serves as an unprivileged user with the settings' token until SIGTERM."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import requests

from scripts.media_front import ROOT, MediaFront, engine_command, media_front
from tests.integration.conftest import free_port, port_open, wait_for


def test_the_rendered_front_passes_nginx_t_with_its_token_and_viewer_log(tmp_path: Path):
    if shutil.which("nginx") is None:
        pytest.fail("nginx is missing: `make test` installs it")
    front = MediaFront(tmp_path / "front", "127.0.0.1:3333", 3340)
    assert front.prepare() is None
    text = (tmp_path / "front" / "streamhub-media-cache.conf").read_text()
    assert f'X-StreamHub-Front "{front.token}"' in text and "server 127.0.0.1:3340 max_fails=0;" in text
    assert f"access_log {front.viewer_log} streamhub_viewers" in text and "listen 127.0.0.1:3333;" in text
    assert front.engine_arguments() == ["--http-host", "127.0.0.1", "--http-port", "3340"]
    assert front.engine_environment()["STREAMHUB_MEDIA_FRONT_TOKEN"] == front.token


def test_the_front_is_off_when_asked_or_without_nginx(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("STREAMHUB_MEDIA_HTTP_FRONT", "off")
    assert media_front(tmp_path) is None
    monkeypatch.setenv("STREAMHUB_MEDIA_HTTP_FRONT", "nginx")
    monkeypatch.setenv("STREAMHUB_MEDIA_HTTP_PORT", "4333")
    front = media_front(tmp_path)
    assert front.listen == "0.0.0.0:4333" and front.upstream_port == 3340
    monkeypatch.setattr("scripts.media_front.nginx_program", lambda: None)  # no nginx on this machine
    assert "nginx is not installed" in front.prepare()


class HeaderRecorder(http.server.BaseHTTPRequestHandler):
    """An upstream in place of the engine: answers 404 and keeps the headers nginx sent."""

    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        HeaderRecorder.seen.append(dict(self.headers.items()))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_the_systemd_front_runs_nginx_with_the_settings_token_as_the_service_user_until_sigterm():
    """`python scripts/media_front.py` as streamhub-media-front.service runs it: as an unprivileged user (nobody
    here), from the settings file's variables; nginx hands requests to the upstream with the token and the
    viewer's address, and stops with the script."""
    if shutil.which("nginx", path="/usr/sbin:/sbin:" + os.environ.get("PATH", "")) is None:
        pytest.fail("nginx is missing: `make test` installs it")
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HeaderRecorder)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    folder = Path(tempfile.mkdtemp(prefix="streamhub-front-"))  # (a user other than root can reach it)
    folder.chmod(0o755)
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "STREAMHUB_MEDIA_HTTP_HOST": "127.0.0.1",
        "STREAMHUB_MEDIA_HTTP_PORT": str(port),
        "STREAMHUB_MEDIA_HTTP_UPSTREAM_PORT": str(upstream.server_address[1]),
        "STREAMHUB_MEDIA_FRONT_TOKEN": "front-token-from-the-settings",
        "STREAMHUB_MEDIA_FRONT_LOG": str(folder / "media-front" / "viewers.log"),
    }
    as_user = []
    if os.geteuid() == 0:  # as the unit's User=: an nginx without root
        os.chown(folder, 65534, 65534)
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    command = [*as_user, sys.executable, str(ROOT / "scripts" / "media_front.py")]
    front = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: port_open(port), 30, lambda: front.poll() and front.stderr.read())
        response = requests.get(f"http://127.0.0.1:{port}/app/cam/ts:playlist.m3u8", timeout=10)
        assert response.status_code == 404
        headers = HeaderRecorder.seen[-1]
        assert headers["X-StreamHub-Front"] == "front-token-from-the-settings"
        assert headers["X-Real-IP"] == "127.0.0.1"
        assert (folder / "media-front" / "nginx.conf").stat().st_uid == (65534 if as_user else os.geteuid())
        front.send_signal(signal.SIGTERM)
        assert front.wait(30) == 0
        assert "nginx fronts the media port" in front.stdout.read()
        assert not port_open(port)  # nginx went with it
    finally:
        if front.poll() is None:
            front.kill()
        upstream.shutdown()
        pid_file = folder / "media-front" / "nginx.pid"
        if front.returncode != 0 and pid_file.exists() and pid_file.read_text().strip():
            with contextlib.suppress(OSError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)  # (the nginx this test started, if it stayed)
        shutil.rmtree(folder, ignore_errors=True)
    # Without the token (a settings file of before the front), it refuses to start, saying why.
    del env["STREAMHUB_MEDIA_FRONT_TOKEN"]
    result = subprocess.run(
        [sys.executable, "scripts/media_front.py"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 2 and "STREAMHUB_MEDIA_FRONT_TOKEN" in result.stderr


def test_the_systemd_engine_listens_behind_the_front_or_on_the_media_port_when_it_is_off(tmp_path: Path):
    """streamhub-engine.service runs `media_front.py --exec-engine`: runengine on the loopback upstream port
    behind the front; with STREAMHUB_MEDIA_HTTP_FRONT=off on the media port itself, while the front's unit
    says so and ends successfully (no restart loop, nothing on the media port)."""
    settings = {"STREAMHUB_MEDIA_HTTP_PORT": "4333", "STREAMHUB_MEDIA_HTTP_UPSTREAM_PORT": "4340"}
    behind = engine_command(settings)
    assert behind[1:] == [str(ROOT / "manage.py"), "runengine", "--http-host", "127.0.0.1", "--http-port", "4340"]
    alone = engine_command({**settings, "STREAMHUB_MEDIA_HTTP_FRONT": "off"})
    assert alone[1:] == [str(ROOT / "manage.py"), "runengine"]  # its own defaults: the media port

    env = {"PATH": os.environ.get("PATH", ""), **settings, "STREAMHUB_MEDIA_HTTP_FRONT": "off"}
    front = subprocess.run(
        [sys.executable, "scripts/media_front.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert front.returncode == 0
    assert "the engine serves it itself" in front.stdout
