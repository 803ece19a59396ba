"""Real processes for end-to-end tests: Redis (started if none answers), the API server (Daphne)
and the media engine node (`manage.py runengine`), on free ports and a database of their own.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from tests.conftest import OME_AUTH

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url():
    """The configured Redis if it answers; otherwise a redis-server of our own for the session."""
    configured = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if redis_answers(configured):
        yield configured
        return
    assert shutil.which("redis-server"), "redis-server is missing: run `make test`, which installs it"
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if redis_answers(url):
            break
        time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


# A database migrated once per test session; every platform starts from a copy of it (a migrate
# per platform cost seconds each). SQLite: a file copied; PostgreSQL: CREATE DATABASE ... TEMPLATE.
_migrated_template: str | None = None


def _migrate(database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def _create_postgres_database(base: str, name: str, template: str | None = None) -> str:
    import psycopg

    parsed = urlparse(base)
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as connection:
        suffix = f' TEMPLATE "{template}"' if template else ""
        connection.execute(f'CREATE DATABASE "{name}"{suffix}')
    return parsed._replace(path=f"/{name}").geturl()


def fresh_database_url(folder: Path) -> str:
    """A new migrated database for the processes under test: SQLite in tmp, or a PostgreSQL database."""
    global _migrated_template
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        if _migrated_template is None:
            template = Path(tempfile.mkdtemp(prefix="streamhub-template-")) / "template.sqlite3"
            _migrate(f"sqlite:///{template}")
            _migrated_template = str(template)
        shutil.copyfile(_migrated_template, folder / "live.sqlite3")
        return f"sqlite:///{folder / 'live.sqlite3'}"
    if _migrated_template is None:
        name = f"streamhub_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _migrate(_create_postgres_database(base, name))
        _migrated_template = name
    return _create_postgres_database(base, f"streamhub_live_{os.getpid()}_{uuid.uuid4().hex[:6]}", _migrated_template)


class LiveStreamHub:
    """The platform as `make run` starts it, on free ports and a database of its own."""

    def __init__(self, folder: Path, redis_url: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.rtmp_port = free_port()
        self.media_port = free_port()
        self.rtmp = f"rtmp://127.0.0.1:{self.rtmp_port}"
        self.media = f"http://127.0.0.1:{self.media_port}"
        self.srt_port = free_port()  # a free TCP port number, free for UDP (SRT) too in practice
        self.env = {
            **os.environ,
            "DATABASE_URL": fresh_database_url(folder),
            "REDIS_URL": redis_url,
            "STREAMHUB_CHANNELS_PREFIX": f"test{uuid.uuid4().hex[:8]}",
            # Its own Celery queues: the workers of other test platforms on this Redis never take its tasks.
            "STREAMHUB_CELERY_PREFIX": f"test{uuid.uuid4().hex[:8]}:",
            "STREAMHUB_VAR_DIR": str(folder / "var"),
            "STREAMHUB_MEDIA_ROOT": str(folder / "media"),
            "STREAMHUB_SRT_HOST": "127.0.0.1",
            "STREAMHUB_SRT_PORT": str(self.srt_port),
            "STREAMHUB_NODE_ID": f"node-{uuid.uuid4().hex[:6]}",
            "STREAMHUB_ENGINE_HEARTBEAT": "0.5",
            # One engine process: these tests find the node's row by STREAMHUB_NODE_ID and spawn one more
            # engine on the same ports at times; tests/integration/test_engine_processes.py runs several.
            "STREAMHUB_ENGINE_PROCESSES": "1",
            "STREAMHUB_JOB_LEASE": "5",
            "STREAMHUB_JOB_RECOVERY_INTERVAL": "1",
            "OME_ACCESS_TOKEN": "ome-access-token",
            "DJANGO_SUPERUSER_PASSWORD": "operator-password-1",
            # HTTPS ports (open only once a vhost has a certificate) on free ports too.
            "STREAMHUB_MEDIA_HTTPS_PORT": str(free_port()),
            "STREAMHUB_API_TLS_PORTS": f"{free_port()},{free_port()}",
            "STREAMHUB_API_TLS_UPSTREAM_PORT": str(free_port()),
            # Tests push to nginx-rtmp, pull from GStreamer and call webhooks on loopback: allowed explicitly
            # (the default refuses loopback, see tests/security).
            "STREAMHUB_OUTBOUND_ALLOW": "127.0.0.0/8,::1",
        }
        self.processes: dict[str, subprocess.Popen] = {}

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return result

    def _spawn(self, name: str, command: list[str]) -> None:
        with open(self.folder / f"{name}.log", "ab") as log:
            # Own process group: stopping (or killing) a process takes its children (e.g. beat) too.
            self.processes[name] = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def start(self, engine: bool = False, worker: bool = False) -> None:
        self._spawn("api", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                            "streamhub.asgi:application"])  # fmt: skip
        if engine:
            self._spawn("engine", [sys.executable, "manage.py", "runengine", "--rtmp-host", "127.0.0.1",
                                   "--rtmp-port", str(self.rtmp_port), "--http-host", "127.0.0.1",
                                   "--http-port", str(self.media_port)])  # fmt: skip
        if worker:
            self.start_worker()
        wait_for(lambda: _answers(f"{self.url}/admin/login/"), 30, lambda: self.log("api"))
        if engine:
            wait_for(lambda: _answers(f"{self.media}/"), 30, lambda: self.log("engine"))

    def start_worker(self) -> None:
        """A Celery worker for every queue (media, control, transcode) with embedded beat (job
        recovery), like `make run`'s workers; returns once it is ready to take tasks."""
        log = self.folder / "worker.log"
        ready_before = log.read_text(errors="replace").count(" ready.") if log.exists() else 0
        self._spawn("worker", [sys.executable, "-m", "celery", "-A", "streamhub", "worker", "-Q", "media,control,transcode",
                               "--pool", "threads", "--concurrency", "8", "--loglevel", "INFO", "-B",
                               "-s", str(self.folder / f"beat-{uuid.uuid4().hex[:6]}"),
                               "--hostname", f"test-{uuid.uuid4().hex[:6]}@%h"])  # fmt: skip
        wait_for(lambda: self.log("worker").count(" ready.") > ready_before, 60, lambda: self.log("worker")[-3000:])

    def kill(self, name: str) -> None:
        """kill -9 a process and its children, as a crash would."""
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes = {}

    def api(self, method: str, path: str, timeout: float = 10, **kwargs) -> requests.Response:
        return requests.request(
            method, f"{self.url}{path}", headers={"Authorization": OME_AUTH}, timeout=timeout, **kwargs
        )


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
        return True
    except requests.RequestException:  # not listening yet, or too busy starting to answer in time
        return False


def wait_for(condition, timeout: float, describe=lambda: "", interval: float = 0.2):
    """Poll ``condition`` until it returns something truthy; fail with ``describe()`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s. {describe()}")


@pytest.fixture
def live_streamhub(tmp_path, redis_url):
    server = LiveStreamHub(tmp_path, redis_url)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_streamhub(tmp_path_factory, redis_url):
    """The API server alone, shared by a module's tests (each starting its own cost seconds of CPU)."""
    server = LiveStreamHub(tmp_path_factory.mktemp("streamhub"), redis_url)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live_platform(tmp_path_factory, redis_url):
    """API server and engine node together, shared by a module's tests."""
    server = LiveStreamHub(tmp_path_factory.mktemp("platform"), redis_url)
    server.start(engine=True, worker=True)
    yield server
    server.stop()


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_page():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        yield page
        browser.close()


def log_in(page, server) -> None:
    """Create the operator account (once) and sign in to the admin."""
    server.manage("shell", "-c", CREATE_OPERATOR)
    page.goto(f"{server.url}/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "operator-password-1")
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()


CREATE_OPERATOR = (
    "from django.contrib.auth.models import User\n"
    "User.objects.filter(username='operator').exists() or "
    "User.objects.create_superuser('operator', 'op@example.com', 'operator-password-1')"
)


@pytest.fixture
def nginx_rtmp(tmp_path):
    """Debian's nginx with its RTMP module, as a push target: rtmp://127.0.0.1:PORT/live/{key}."""
    assert shutil.which("nginx"), "nginx is missing: `make test` installs nginx and libnginx-mod-rtmp"
    port = free_port()
    folder = tmp_path / "nginx"
    folder.mkdir()
    folder.chmod(0o755)  # the worker runs unprivileged
    config = folder / "nginx.conf"
    config.write_text(
        "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n"
        f"daemon off; worker_processes 1; pid {folder}/nginx.pid; error_log {folder}/error.log warn;\n"
        "events { worker_connections 256; }\n"
        f"rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n"
    )
    process = subprocess.Popen(["nginx", "-c", str(config), "-p", str(folder)], stderr=subprocess.DEVNULL)
    wait_for(lambda: port_open(port), 10)
    yield f"rtmp://127.0.0.1:{port}/live"
    process.terminate()
    process.wait(timeout=10)


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
