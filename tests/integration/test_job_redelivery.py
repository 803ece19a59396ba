"""A media job runs once even when Celery delivers its task twice (issue #22 item 5).

The issue's reproduction, with real processes: a record (short files) and a push to nginx-rtmp
run; Redis is paused for 12 s and every client connection is dropped (`CLIENT PAUSE 12000 ALL`,
`CLIENT KILL TYPE normal`, `CLIENT KILL TYPE pubsub`), so the worker loses its broker connection
and Redis gives the unacknowledged tasks back. The redelivered tasks find the jobs' leases alive
and do nothing: one writer per file, every file on disk in the database and the info XML, and one
push that never reconnects. The Redis here is the test's own (a private redis-server on a free
port): pausing the machine's shared Redis would stall every other test and helper using it.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.integration.conftest import LiveStreamHub, free_port, redis_answers, wait_for
from tests.integration.test_engine import ffprobe, publish, wait_live

pytestmark = pytest.mark.services
APP = "/v1/vhosts/default/apps/app"
PAUSE_MS = 12000


@pytest.fixture
def private_redis():
    """A redis-server of this test alone: (port, url)."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: redis_answers(url), 10)
    yield port, url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def platform(tmp_path, private_redis):
    server = LiveStreamHub(tmp_path, private_redis[1])
    server.start(engine=True, worker=True)
    yield server
    server.stop()


def redis_cli(port: int, *command: str) -> str:
    result = subprocess.run(
        ["redis-cli", "-p", str(port), *command], capture_output=True, text=True, timeout=PAUSE_MS / 1000 + 20
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def job_of(platform, kind: str, job_id: str) -> dict:
    [job] = platform.api("POST", f"{APP}:{kind}", json={"id": job_id}, timeout=30).json()["response"]
    return job


def stored_files(platform, record_id: str) -> list[dict]:
    """The record's file rows, read from the platform's database."""
    script = (
        "import json; from apps.recording.models import RecordFile; print(json.dumps(list("
        f"RecordFile.objects.filter(record__record_id={record_id!r}).values('sequence', 'path', 'writer', "
        "'finished_at')), default=str))"
    )
    return json.loads(platform.manage("shell", "-c", script).stdout.strip().splitlines()[-1])


def outcomes(log: str, task: str) -> dict[str, list[str]]:
    """What each delivery of ``task`` ended with, by Celery task id (a redelivered task keeps its
    id): {"<id>": ["already running", "stopped"]}."""
    found: dict[str, list[str]] = {}
    pattern = rf"Task apps\.\w+\.tasks\.{task}\[([^\]]+)\] succeeded in [\d.]+s: '([^']*)'"
    for task_id, outcome in re.findall(pattern, log):
        found.setdefault(task_id, []).append(outcome)
    return found


def redelivered_and_refused(log: str, task: str) -> bool:
    """The same task (same id) came twice and one delivery found the job's lease alive."""
    received = re.findall(rf"Task apps\.\w+\.tasks\.{task}\[([^\]]+)\] received", log)
    return any(
        received.count(task_id) >= 2 and "already running" in ends for task_id, ends in outcomes(log, task).items()
    )


def test_a_redelivered_record_and_push_do_not_run_twice(platform, private_redis, nginx_rtmp):
    port = private_redis[0]
    publisher = publish(platform, "cam", seconds=150)
    try:
        wait_live(platform, "cam", publisher)
        record = {"id": "rec", "stream": {"name": "cam"}, "interval": 3000,
                  "filePath": "rec/${Sequence}.mp4", "infoPath": "rec/info.xml"}  # fmt: skip
        push = {"id": "out", "stream": {"name": "cam"}, "protocol": "rtmp", "url": nginx_rtmp, "streamKey": "copy"}
        assert platform.api("POST", f"{APP}:startRecord", json=record).status_code == 200
        assert platform.api("POST", f"{APP}:startPush", json=push).status_code == 200
        wait_for(
            lambda: job_of(platform, "records", "rec")["sequence"] >= 1, 40, lambda: platform.log("worker")[-3000:]
        )
        wait_for(
            lambda: job_of(platform, "pushes", "out")["state"] == "started", 30, lambda: platform.log("worker")[-3000:]
        )
        push_before = job_of(platform, "pushes", "out")

        # The outage: Redis answers nobody for 12 s and every client is dropped.
        assert redis_cli(port, "client", "pause", str(PAUSE_MS), "ALL") == "OK"
        redis_cli(port, "client", "kill", "type", "normal")
        redis_cli(port, "client", "kill", "type", "pubsub")
        time.sleep(PAUSE_MS / 1000)

        # Redis gave the unacknowledged tasks back and the worker took them again: each second
        # delivery found its job's lease alive and did nothing.
        def redelivered() -> bool:
            log = platform.log("worker")
            return redelivered_and_refused(log, "record_stream") and redelivered_and_refused(log, "push_stream")

        wait_for(redelivered, 60, lambda: platform.log("worker")[-5000:])
        # Meanwhile and after, the one push keeps its connection: never retrying, never reconnected.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            state = job_of(platform, "pushes", "out")
            assert (state["state"], state["sequence"]) == ("started", push_before["sequence"]), state
            time.sleep(0.5)
        assert "already publishing" not in (Path(nginx_rtmp_folder(platform)) / "error.log").read_text()

        sequence_after = job_of(platform, "records", "rec")["sequence"]
        wait_for(
            lambda: job_of(platform, "records", "rec")["sequence"] >= sequence_after + 2,
            30,
            lambda: platform.log("worker")[-3000:],
        )  # fmt: skip  the one recorder goes on
        for kind, job_id in (("stopRecord", "rec"), ("stopPush", "out")):
            assert platform.api("POST", f"{APP}:{kind}", json={"id": job_id}).status_code == 200
        wait_for(lambda: job_of(platform, "records", "rec")["state"] == "stopped", 30)
        wait_for(lambda: job_of(platform, "pushes", "out")["state"] == "stopped", 30)
    finally:
        publisher.kill()

    folder = platform.folder / "media" / "rec"
    on_disk = sorted(str(path) for path in folder.glob("*.mp4"))
    assert not list(folder.glob(".*.recording.*")), list(folder.iterdir())  # every file closed by its writer
    rows = stored_files(platform, "rec")
    assert sorted(row["path"] for row in rows) == on_disk
    assert len({row["sequence"] for row in rows}) == len(rows)
    assert {row["writer"] for row in rows} == {rows[0]["writer"]} and rows[0]["writer"]  # one writer throughout
    info = ET.parse(folder / "info.xml").getroot()
    assert sorted(item.findtext("filePath") for item in info.iter("file")) == on_disk
    assert len(on_disk) >= 8  # files before, during and after the outage
    assert job_of(platform, "records", "rec")["sequence"] == max(row["sequence"] for row in rows)
    for index, path in enumerate(sorted(on_disk, key=lambda name: int(Path(name).stem))):
        probe = ffprobe(path)  # a file two writers had shared would not even open
        assert {stream["codec_type"] for stream in probe["streams"]} == {"video", "audio"}
        if index < len(on_disk) - 1:  # the last one ends at the stop
            assert 2.0 <= float(probe["format"]["duration"]) <= 4.5, path
    # The second deliveries of both tasks did nothing: one run each, which ended at the stop.
    log = platform.log("worker")
    for task in ("record_stream", "push_stream"):
        ends = [outcome for task_ends in outcomes(log, task).values() for outcome in task_ends]
        assert ends.count("stopped") == 1 and "lease lost" not in ends, ends


def nginx_rtmp_folder(platform) -> Path:
    # The nginx_rtmp fixture keeps its config and logs under the test's tmp_path.
    return platform.folder / "nginx"
