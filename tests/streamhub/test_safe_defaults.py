"""Safe defaults of the API server: DEBUG off unless asked for, unknown URLs and failures in each
API's own format, production mode refusing development secrets, `check --deploy` clean."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.http import HttpRequest
from django.test import Client, override_settings
from django.urls import path

import streamhub.urls
from tests.conftest import OME_AUTH

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = "k3Y-" + "production-secret-key-with-enough-variety-0123456789"


def boom(request: HttpRequest):
    raise RuntimeError("a bug in a view")


# The project's URL map plus views that fail, to see what a client gets from a bug.
urlpatterns = [
    path("v1/boom", boom),
    path("rest-api/boom", boom),
    path("admin-boom", boom),
    *streamhub.urls.urlpatterns,
]
handler404 = streamhub.urls.handler404
handler500 = streamhub.urls.handler500


def run_manage(*args: str, **env_changes: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ}
    for name in ("STREAMHUB_DEBUG", "DJANGO_DEBUG", "STREAMHUB_PRODUCTION", "STREAMHUB_HTTPS"):
        env.pop(name, None)
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def production(**changes: str | None) -> dict[str, str | None]:
    return {"STREAMHUB_PRODUCTION": "1", "DJANGO_SECRET_KEY": STRONG_KEY, "OME_ACCESS_TOKEN": "s3cret-t0ken", **changes}


def debug_setting(**env_changes: str | None) -> str:
    result = run_manage("shell", "-c", "from django.conf import settings; print(settings.DEBUG)", **env_changes)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1]


def test_debug_is_off_unless_asked_for():
    assert debug_setting() == "False"
    assert debug_setting(STREAMHUB_DEBUG="1") == "True"


@pytest.mark.parametrize("prefix", ["/rest-api", "/rest-api/v3"])
def test_an_unknown_wcs_url_answers_the_wcs_error_body(db, prefix):
    response = Client().post(f"{prefix}/no-such/method", data={}, content_type="application/json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body.pop("timestamp"), int)
    assert body == {"status": 404, "error": "Not Found", "message": "Not Found", "path": f"{prefix}/no-such/method"}


def test_an_unknown_ome_url_answers_the_envelope(ome):
    response = ome.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["statusCode"] == 404


def test_an_unknown_page_shows_no_route_list(db):
    response = Client().get("/no-such-page")
    assert response.status_code == 404
    assert b"rest-api" not in response.content and b"URLconf" not in response.content


@override_settings(ROOT_URLCONF=__name__)
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/v1/boom", {"statusCode": 500, "message": "[HTTP] Internal Server Error (500)"}),
        (
            "/rest-api/boom",
            {
                "status": 500,
                "error": "Internal Server Error",
                "message": "Internal Server Error",
                "path": "/rest-api/boom",
            },
        ),
    ],
)
def test_a_bug_answers_500_in_the_apis_format_without_a_traceback(db, url, expected):
    response = Client(raise_request_exception=False).get(url, HTTP_AUTHORIZATION=OME_AUTH)
    assert response.status_code == 500
    body = response.json()
    body.pop("timestamp", None)
    assert body == expected
    assert b"a bug in a view" not in response.content


@override_settings(ROOT_URLCONF=__name__)
def test_a_bug_elsewhere_answers_djangos_plain_500_page(db):
    response = Client(raise_request_exception=False).get("/admin-boom")
    assert response.status_code == 500
    assert b"a bug in a view" not in response.content and b"Traceback" not in response.content


def test_production_refuses_the_development_token():
    result = run_manage("check", **production(OME_ACCESS_TOKEN="ome-access-token"))
    assert result.returncode != 0
    assert "OME_ACCESS_TOKEN is the development token: refusing to start" in result.stderr


def test_production_refuses_debug():
    result = run_manage("check", **production(STREAMHUB_DEBUG="1"))
    assert result.returncode != 0
    assert "STREAMHUB_DEBUG: refusing to start" in result.stderr


def test_check_deploy_is_clean_in_production_mode():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **production())
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_names_what_is_missing_outside_production():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    for check in ("security.W004", "security.W012", "security.W016", "security.W009"):
        assert check in result.stderr


def test_production_turns_on_hsts_and_secure_cookies():
    code = (
        "from django.conf import settings as s; "
        "print(s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_CONTENT_TYPE_NOSNIFF)"
    )
    result = run_manage("shell", "-c", code, **production())
    assert result.stdout.split()[-4:] == ["31536000", "True", "True", "True"]


# The supervisor of `make run` (scripts/run_platform.py) checks the secrets before it starts anything.
_spec = importlib.util.spec_from_file_location("run_platform_secrets", ROOT / "scripts" / "run_platform.py")
run_platform = importlib.util.module_from_spec(_spec)
sys.modules["run_platform_secrets"] = run_platform  # dataclasses look their module up there
_spec.loader.exec_module(run_platform)


@pytest.fixture
def development_env(monkeypatch):
    for name in ("DJANGO_SECRET_KEY", "OME_ACCESS_TOKEN", "STREAMHUB_PRODUCTION"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_make_run_warns_loudly_on_a_public_address_with_development_secrets(development_env, capsys):
    development_env.setenv("STREAMHUB_API_HOST", "0.0.0.0")
    run_platform.check_development_secrets()
    warning = capsys.readouterr().err
    assert "WARNING: the API listens on 0.0.0.0 with the development DJANGO_SECRET_KEY and OME_ACCESS_TOKEN" in warning


def test_make_run_says_nothing_on_loopback(development_env, capsys):
    development_env.setenv("STREAMHUB_API_HOST", "127.0.0.1")
    run_platform.check_development_secrets()
    assert capsys.readouterr().err == ""


def test_make_run_refuses_a_public_address_with_development_secrets_in_production():
    env = {**os.environ, "STREAMHUB_PRODUCTION": "1", "STREAMHUB_API_HOST": "0.0.0.0"}
    env.pop("OME_ACCESS_TOKEN", None)
    env.pop("DJANGO_SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "scripts/run_platform.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "refusing to start (STREAMHUB_PRODUCTION is set)" in result.stderr
    assert "started" not in result.stdout
