"""`make run`'s supervisor (scripts/run_platform.py), run as it is on free ports with a database of its
own: every kind of child killed with SIGKILL comes back, the API answers while the engine restarts, a
running record resumes after its worker's death, a crash loop backs off, and SIGTERM stops everything.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import time

import pytest
import requests

from tests.integration.conftest import LiveStreamHub, _answers, wait_for
from tests.integration.test_engine import publish, wait_live
from tests.integration.test_recording import record_state

pytestmark = pytest.mark.services
APP = "/v1/vhosts/default/apps/app"
STARTED = re.compile(r"\[run_platform\] started (\S+) \(pid (\d+)\)")


class SupervisedStreamHub(LiveStreamHub):
    """The platform as `make run` starts it: one supervisor process and the children it starts."""

    def __init__(self, folder, redis_url) -> None:
        super().__init__(folder, redis_url)
        self.env.update(
            {
                "STREAMHUB_API_HOST": "127.0.0.1",
                "STREAMHUB_API_PORT": str(self.port),
                "STREAMHUB_RTMP_HOST": "127.0.0.1",
                "STREAMHUB_RTMP_PORT": str(self.rtmp_port),
                "STREAMHUB_MEDIA_HTTP_HOST": "127.0.0.1",
                "STREAMHUB_MEDIA_HTTP_PORT": str(self.media_port),
            }
        )

    def start_supervisor(self, wait_for_engine: bool = True) -> None:
        self._spawn("supervisor", [sys.executable, "scripts/run_platform.py"])
        wait_for(lambda: _answers(f"{self.url}/admin/login/"), 60, lambda: self.log("supervisor")[-3000:])
        if wait_for_engine:
            wait_for(lambda: _answers(f"{self.media}/"), 60, lambda: self.log("supervisor")[-3000:])
        for name in ("media-worker", "transcode-worker", "control-worker", "beat"):
            wait_for(lambda name=name: self.ready_count(name) >= 1, 90, lambda: self.log("supervisor")[-3000:])

    @property
    def supervisor(self):
        return self.processes["supervisor"]

    def pids(self, name: str) -> list[int]:
        """Every pid the supervisor started ``name`` with, in order."""
        return [int(pid) for child, pid in STARTED.findall(self.log("supervisor")) if child == name]

    def ready_count(self, name: str) -> int:
        """How many times a Celery child said it is ready (a worker) or started (beat)."""
        log = self.log("supervisor")
        if name == "beat":
            return log.count("beat: Starting...")
        return log.count(f"{name.removesuffix('-worker')}@{socket.gethostname()} ready.")

    def kill_child(self, name: str) -> int:
        """kill -9 the running ``name`` (only that process, as an operator's kill would); its pid."""
        pid = self.pids(name)[-1]
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 30) -> int:
        wait_for(lambda: f"{name} killed by SIGKILL: restarting it in" in self.log("supervisor"), 10)
        return wait_for(lambda: self.pids(name)[-1] != old_pid and self.pids(name)[-1], timeout)


@pytest.fixture(scope="module")
def supervised(tmp_path_factory, redis_url):
    platform = SupervisedStreamHub(tmp_path_factory.mktemp("supervised"), redis_url)
    platform.start_supervisor()
    yield platform
    platform.stop()


def api_answers(platform) -> bool:
    try:
        return platform.api("GET", "/v1/vhosts", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_a_killed_api_server_is_restarted(supervised):
    old = supervised.kill_child("api")
    supervised.wait_restarted("api", old)
    wait_for(lambda: api_answers(supervised), 30, lambda: supervised.log("supervisor")[-3000:])
    assert supervised.supervisor.poll() is None


@pytest.mark.parametrize("name", ["media-worker", "transcode-worker", "control-worker", "beat"])
def test_a_killed_celery_child_is_restarted(supervised, name):
    ready = supervised.ready_count(name)
    old = supervised.kill_child(name)
    new = supervised.wait_restarted(name, old)
    wait_for(lambda: supervised.ready_count(name) > ready, 60, lambda: supervised.log("supervisor")[-3000:])
    # Only the one process was restarted, and the API never stopped answering.
    assert supervised.pids(name)[-1] == new
    assert api_answers(supervised)


def test_the_api_answers_while_a_killed_engine_restarts(supervised):
    old = supervised.kill_child("engine")
    answers = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        supervised.pids("engine")[-1] != old and _answers(f"{supervised.media}/")
    ):
        answers.append(api_answers(supervised))
        time.sleep(0.2)
    assert supervised.pids("engine")[-1] != old, supervised.log("supervisor")[-3000:]
    assert len(answers) >= 3 and all(answers), answers
    assert "engine killed by SIGKILL: restarting it in 1 s" in supervised.log("supervisor")

    # The new engine takes publishes, and the API sees them.
    publisher = publish(supervised, "after-restart", seconds=20)
    try:
        wait_live(supervised, "after-restart", publisher)
    finally:
        publisher.kill()


def test_a_record_resumes_after_its_media_worker_is_killed(supervised):
    body = {"id": "survivor", "stream": {"name": "survivor"}, "interval": 2000, "filePath": "survivor/${Sequence}.mp4"}
    publisher = publish(supervised, "survivor", seconds=90)
    try:
        wait_live(supervised, "survivor", publisher)
        assert supervised.api("POST", f"{APP}:startRecord", json=body).status_code == 200
        wait_for(lambda: record_state(supervised, "survivor")["sequence"] >= 1, 20)

        old = supervised.kill_child("media-worker")
        before = record_state(supervised, "survivor")
        supervised.wait_restarted("media-worker", old)
        # Nobody ran the media worker again by hand: the supervisor did, and the lease (5 s here)
        # hands the record to it, which continues with its next file.
        wait_for(
            lambda: (r := record_state(supervised, "survivor"))["state"] == "recording"
            and r["sequence"] > before["sequence"] + 1,
            120,  # a restarted Celery worker takes tens of seconds to boot on a loaded 2-core machine
            lambda: supervised.log("supervisor")[-3000:],
        )
        assert supervised.api("POST", f"{APP}:stopRecord", json={"id": "survivor"}).status_code == 200
        wait_for(lambda: record_state(supervised, "survivor")["state"] == "stopped", 20)
    finally:
        publisher.kill()
    files = sorted((supervised.folder / "media" / "survivor").glob("[0-9]*.mp4"), key=lambda path: int(path.stem))
    assert max(int(path.stem) for path in files) > before["sequence"] + 1


def test_sigterm_stops_every_process_of_the_platform(supervised):
    """Last in this module: it ends the platform."""
    groups = {name: supervised.pids(name)[-1] for name in ("api", "engine", "media-worker", "control-worker", "beat")}
    os.kill(supervised.supervisor.pid, signal.SIGTERM)
    assert supervised.supervisor.wait(timeout=40) == 0
    for pid in groups.values():
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # nothing of that child's process group is left (a prefork pool too)
    assert "[run_platform] stopped" in supervised.log("supervisor")
    assert not _answers(f"{supervised.url}/admin/login/")


def test_a_crash_looping_engine_backs_off_longer_each_time(tmp_path, redis_url):
    platform = SupervisedStreamHub(tmp_path, redis_url)
    # Something else holds the engine's RTMP port: the engine exits at every start.
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", platform.rtmp_port))
    squatter.listen()
    try:
        platform.start_supervisor(wait_for_engine=False)
        log = lambda: platform.log("supervisor")  # noqa: E731
        wait_for(lambda: "restarting it in 4 s, crash 3 in a row" in log(), 180, lambda: log()[-3000:])
        delays = re.findall(r"engine exited with \d+: restarting it in (\d+) s", log())
        assert delays[:3] == ["1", "2", "4"], delays
        assert api_answers(platform)  # the others go on serving
        starts = len(platform.pids("engine"))
        time.sleep(3)
        assert len(platform.pids("engine")) <= starts + 1  # a pause, not a busy loop
    finally:
        squatter.close()
    try:
        # Once the port is free the next start succeeds.
        wait_for(lambda: _answers(f"{platform.media}/"), 60, lambda: platform.log("supervisor")[-3000:])
        publisher = publish(platform, "recovered", seconds=20)
        try:
            wait_live(platform, "recovered", publisher)
        finally:
            publisher.kill()
    finally:
        platform.stop()
