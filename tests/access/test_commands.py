"""`manage.py signurl`: signed URLs of a stream that the engine's admission check accepts."""

from __future__ import annotations

import asyncio
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.access.services import access_rules
from apps.hosting.models import Application
from media_engine.admission import PLAY, PUBLISH, AdmissionRequest, admit

pytestmark = pytest.mark.django_db


@pytest.fixture
def app() -> Application:
    application = Application.objects.select_related("virtual_host").get(name="app")
    application.signed_policy = {"secretKey": "cmd-secret", "enables": {"providers": "rtmp", "publishers": "hls"}}
    application.save()
    return application


def run(*args: str) -> str:
    out = StringIO()
    call_command("signurl", *args, stdout=out)
    return out.getvalue()


def test_it_prints_signed_play_urls(app, settings):
    settings.ENGINE_HTTP_PORT = 3333
    lines = dict(line.split(": ", 1) for line in run("app", "cam", "--allow-ip", "127.0.0.1").splitlines())
    assert set(lines) == {"rtmp", "hls", "llhls", "webrtc (WHEP)"}
    assert lines["hls"].startswith(f"http://{settings.ENGINE_NODE_ADDRESS}:3333/app/cam/ts:playlist.m3u8?policy=")
    request = AdmissionRequest(PLAY, "hls", lines["hls"], "127.0.0.1", 0, "cam")
    assert asyncio.run(admit(access_rules(app), request)).allowed
    assert "cmd-secret" not in "".join(lines.values())


def test_it_signs_a_given_url_for_publishing(app):
    url = run("app", "cam", "--direction", "publish", "--url", "rtmp://example.com:1935/app/cam").strip()
    request = AdmissionRequest(PUBLISH, "rtmp", url, "203.0.113.5", 0, "cam")
    assert asyncio.run(admit(access_rules(app), request)).allowed


def test_it_explains_what_is_wrong(app):
    with pytest.raises(CommandError, match="No application default/nope"):
        run("nope", "cam")
    app.signed_policy = None
    app.save()
    with pytest.raises(CommandError, match="has no signedPolicy"):
        run("app", "cam")
