"""Real processes for end-to-end tests: a StreamHub API server (Daphne) on its own database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fresh_database_url(tmp_path: Path) -> str:
    """A new empty database for the processes under test: SQLite in tmp, or a fresh PostgreSQL database."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        return f"sqlite:///{tmp_path / 'live.sqlite3'}"
    import psycopg

    parsed = urlparse(base)
    name = f"streamhub_live_{os.getpid()}"
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return parsed._replace(path=f"/{name}").geturl()


class LiveStreamHub:
    """The API server as `make run` starts it, on a free port and a database of its own."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": fresh_database_url(tmp_path),
            "STREAMHUB_VAR_DIR": str(tmp_path / "var"),
            "OME_ACCESS_TOKEN": "ome-access-token",
            "DJANGO_SUPERUSER_PASSWORD": "operator-password-1",
        }
        self.process: subprocess.Popen | None = None
        self.log = tmp_path / "daphne.log"
        self.manage("migrate", "--noinput")

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return result

    def start(self) -> None:
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "streamhub.asgi:application"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/admin/login/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError(f"Daphne did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture
def live_streamhub(tmp_path):
    server = LiveStreamHub(tmp_path)
    server.start()
    yield server
    server.stop()
