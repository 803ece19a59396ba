"""Fixtures shared by the whole suite: API clients with and without OME credentials."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path

import pytest
from rest_framework.test import APIClient

OME_TOKEN = "ome-access-token"
# The spec's own example header for the token "ome-access-token".
OME_AUTH = "Basic b21lLWFjY2Vzcy10b2tlbg=="


# Tests pull from and push to servers on loopback: the outbound policy allows it here explicitly
# (its default refuses loopback; tests/security shows that with OUTBOUND_ALLOW empty).
TEST_OUTBOUND_ALLOW = ["127.0.0.0/8", "::1"]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules that start real processes (marked ``services`` or ``browser``) first, the quick ones after:
    `make test` hands whole modules to its workers in this order (``--no-loadscope-reorder``), so the long
    ones start early and the short ones fill the workers' last minutes instead of one long module
    starting last. A stable sort: pytest-django's order stays within each group."""
    items.sort(key=lambda item: not (item.get_closest_marker("services") or item.get_closest_marker("browser")))


@pytest.fixture(autouse=True)
def _ome_token(settings):
    settings.OME_ACCESS_TOKEN = OME_TOKEN
    settings.OUTBOUND_ALLOW = TEST_OUTBOUND_ALLOW


@pytest.fixture(autouse=True)
def _task_keeps_the_test_connection(monkeypatch):
    """The runners and control tasks (media jobs, SIP calls, v3 calls, the history prune) close stale
    connections as a Celery task starts (a worker's connection may have outlived the database's
    patience); in these tests the "worker" runs inside the test's transaction, whose connection must
    stay open (PostgreSQL closes a connection found inside a transaction; SQLite's test database does not)."""
    monkeypatch.setattr("apps.jobs.runner.close_old_connections", lambda: None)
    monkeypatch.setattr("apps.async_jobs.services.close_old_connections", lambda: None)
    monkeypatch.setattr("apps.jobs.tasks.close_old_connections", lambda: None)


@pytest.fixture(autouse=True)
def _default_vhost_survives_flushes(request):
    """Transactional tests end with a flush, which takes the migrated default vhost and app with it.
    pytest-django runs them last, but pytest-xdist workers run files in the order they get them, so a
    plain database test puts the defaults back (inside its own transaction) when they are missing."""
    marker = request.node.get_closest_marker("django_db")
    if "transactional_db" in request.fixturenames or "live_server" in request.fixturenames:
        return
    if marker is None:
        if "db" not in request.fixturenames:
            return
    elif marker.kwargs.get("transaction") or (marker.args and marker.args[0]):
        return
    request.getfixturevalue("db")
    from django.apps import apps

    import_module("apps.hosting.migrations.0002_default_vhost").create_default_vhost(apps, None)


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture
def ome(db) -> APIClient:
    """An OME API client: sends the access token, JSON bodies."""
    client = APIClient(HTTP_AUTHORIZATION=OME_AUTH)
    client.default_format = "json"
    return client


def basic(token: str) -> str:
    return "Basic " + base64.b64encode(token.encode()).decode()


# -- GStreamer's RTSP server as a pull source ---------------------------------------------------

GST_RTSP_SERVER = Path(__file__).parent / "tools" / "gst_rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # python3-gi is Debian's, not the virtualenv's


class RtspSource:
    """gst-rtsp-server serving a live H.264 640x360 + AAC test stream at ``url``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/live"
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(GST_RTSP_SERVER), str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.stop()
            raise AssertionError(f"gst-rtsp-server did not start: {line} {self.process.stderr.read()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def rtsp_source() -> Iterator[Callable[[], RtspSource]]:
    """Start GStreamer RTSP servers (`make test` installs gst-rtsp-server and python3-gi)."""
    assert Path(SYSTEM_PYTHON).exists(), "Debian's python3 is missing"
    servers: list[RtspSource] = []

    def start() -> RtspSource:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = RtspSource(port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
