"""`make run`'s nginx front (scripts/media_front.py): the shipped cache tier's configuration rendered for the
front passes `nginx -t` with the front's token and viewer log; the front is off when asked or without nginx."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scripts.media_front import MediaFront, media_front


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
