"""The Puller against a real engine node (in a process of its own: PyAV holds the GIL while it
connects, so an engine in the test's own process could not answer): RTSP from GStreamer's RTSP
server, RTMP from another engine stream, an HTTP file paced to real time; failover between URLs
while the engine stream stays up; and validate_pull_urls."""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from media_engine.jobs.pull import Puller, PullFailed, PullProgress, source_type_of, validate_pull_urls

from .conftest import codecs, ffprobe, publish_command

ENGINE_PROCESS = Path(__file__).parents[2] / "tools" / "engine_process.py"


class EngineProcess:
    """tests/tools/engine_process.py: an engine node serving ``app`` on free loopback ports."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ENGINE_PROCESS)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
        )
        ready, rtmp_port, http_port = self.process.stdout.readline().split()
        assert ready == "ready"
        self.rtmp_port, self.http_port = int(rtmp_port), int(http_port)

    def url(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/app/{name}"

    def playlist(self, name: str) -> str | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.http_port}/app/{name}/ts:playlist.m3u8", timeout=5
            ) as answer:
                return answer.read().decode()
        except OSError:
            return None

    def session(self, name: str) -> str | None:
        """The publication session in the stream's segment names (it changes when the stream restarts)."""
        found = re.findall(r"seg_([0-9a-f]+)_\d+\.ts", self.playlist(name) or "")
        return found[-1] if found else None

    def close(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineProcess]:
    node = EngineProcess()
    yield node
    node.close()


@dataclass
class PullRun:
    """A Puller running in a thread, with the states it reported."""

    puller: Puller
    stop: threading.Event = field(default_factory=threading.Event)
    states: list[tuple[str, str | None]] = field(default_factory=list)
    progress: list[PullProgress] = field(default_factory=list)
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def run(self) -> None:
        try:
            self.puller.run()
        except BaseException as error:  # noqa: BLE001 - checked by the tests
            self.error = error

    def seen(self, state: str) -> list[str | None]:
        return [error for seen, error in self.states if seen == state]

    def wait_state(self, state: str, timeout: float = 20.0) -> str | None:
        deadline = time.monotonic() + timeout
        while not self.seen(state):
            assert time.monotonic() < deadline, f"no {state!r} state; saw {self.states} ({self.error})"
            time.sleep(0.05)
        return self.seen(state)[0]


@pytest.fixture
def pull(engine: EngineProcess) -> Iterator:
    runs: list[PullRun] = []

    def start(urls: list[str], name: str, **options) -> PullRun:
        holder: list[PullRun] = []
        puller = Puller(
            urls,
            engine.url(name),
            should_stop=lambda: holder[0].stop.is_set(),
            on_state=lambda state, error: holder[0].states.append((state, error)),
            on_progress=lambda progress: holder[0].progress.append(progress),
            **options,
        )
        run = PullRun(puller)
        holder.append(run)
        run.thread = threading.Thread(target=run.run, daemon=True)
        run.thread.start()
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.stop.set()
    for run in runs:
        run.thread.join(15)


def wait_live(engine: EngineProcess, name: str, timeout: float = 20.0) -> str:
    """Wait for the stream's first HLS segment; its publication session."""
    deadline = time.monotonic() + timeout
    while (session := engine.session(name)) is None:
        assert time.monotonic() < deadline, f"{name} did not go live"
        time.sleep(0.2)
    return session


# -- validation -----------------------------------------------------------------------------------


def test_validate_pull_urls_accepts_one_scheme_group():
    assert validate_pull_urls([" rtsp://cam.example:554/a ", "rtsp://10.0.0.2/b"]) == (
        "rtsp",
        ["rtsp://cam.example:554/a", "rtsp://10.0.0.2/b"],
    )
    assert validate_pull_urls(["http://a.example/x.mp4", "https://b.example/y.m3u8"])[0] == "http"
    assert source_type_of(["rtsp://cam/a"]) == "RtspPull"
    assert source_type_of(["rtmp://host/app/s"]) == "RtmpPull"


@pytest.mark.parametrize(
    ("urls", "message"),
    [
        ([], "non-empty array"),
        ("rtsp://cam/a", "non-empty array"),
        ([""], "non-empty string"),
        ([3], "non-empty string"),
        (["ovt://origin:9000/app/s"], "OVT pull is not supported"),
        (["file:///etc/passwd"], "use rtsp://"),
        (["rtsp://cam/a", "rtmp://host/app/s"], "same scheme"),
        (["rtsp:///nohost"], "no valid host"),
        (["rtsp://cam:99999/a"], "not valid"),
        (["rtsp://cam a/b"], "spaces"),
    ],
)
def test_validate_pull_urls_refuses(urls, message):
    with pytest.raises(ValueError, match=message):
        validate_pull_urls(urls)


# -- media ----------------------------------------------------------------------------------------


def test_rtsp_pull_is_live_in_the_engine(engine, pull, rtsp_source):
    source = rtsp_source()
    run = pull([source.url], "rtsp1")
    run.wait_state("started")
    wait_live(engine, "rtsp1")
    probe = ffprobe(engine.url("rtsp1"))
    assert codecs(probe) == {("video", "h264", 640, 360), ("audio", "aac", None, None)}
    time.sleep(1.5)
    assert run.progress and run.progress[-1].received_bytes > 10_000
    run.stop.set()
    run.thread.join(10)
    assert run.error is None
    assert run.states[-1] == ("stopped", None)


def test_failover_to_the_next_url_keeps_the_engine_stream(engine, pull, rtsp_source):
    first, second = rtsp_source(), rtsp_source()
    run = pull([first.url, second.url], "failover1", no_input_timeout=1.5)
    run.wait_state("started")
    session = wait_live(engine, "failover1")
    first.stop()
    reason = run.wait_state("failover", timeout=15)
    assert second.url in reason
    # The same engine stream goes on, fed by the second source.
    time.sleep(3)
    # (on failure: the puller's states say whether it reopened its output, the playlist which sessions the engine cut)
    assert engine.session("failover1") == session, f"states {run.states}; playlist {engine.playlist('failover1')}"
    probe = ffprobe(engine.url("failover1"))
    assert ("video", "h264", 640, 360) in codecs(probe)
    assert run.error is None


def test_nothing_to_pull_fails_like_ome(pull):
    run = pull(["rtsp://127.0.0.1:1/none", "rtsp://127.0.0.1:2/none"], "nothing", open_timeout=2)
    run.thread.join(20)
    assert isinstance(run.error, PullFailed)
    assert run.seen("error")[0].startswith("Failed to pull provided URL")
    assert not run.seen("started")


def test_persistent_pull_keeps_retrying(pull, rtsp_source):
    run = pull(["rtsp://127.0.0.1:1/none"], "persistent1", persistent=True, open_timeout=1, max_backoff=1)
    run.wait_state("retrying", timeout=10)
    time.sleep(2.5)
    assert len(run.seen("retrying")) >= 2
    assert run.thread.is_alive()
    run.stop.set()
    run.thread.join(10)
    assert run.error is None and run.states[-1][0] == "stopped"


def test_rtmp_pull_of_another_stream(engine, pull):
    publisher = subprocess.Popen(publish_command(engine.url("origin1"), 30), stdin=subprocess.DEVNULL)
    wait_live(engine, "origin1")
    run = pull([engine.url("origin1")], "copy1")
    run.wait_state("started")
    wait_live(engine, "copy1")
    assert codecs(ffprobe(engine.url("copy1"))) == {("video", "h264", 320, 240), ("audio", "aac", None, None)}
    publisher.kill()
    publisher.wait()


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP (without range requests: MP4 files must be written faststart)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_file_is_paced_to_real_time_and_ends(engine, pull, http_folder):
    folder, base = http_folder
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine",
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
            str(folder / "clip.mp4"),
        ],  # fmt: skip
        check=True,
    )
    started = time.monotonic()
    run = pull([f"{base}/clip.mp4"], "file1")
    run.wait_state("started")
    wait_live(engine, "file1")
    run.thread.join(15)
    elapsed = time.monotonic() - started
    assert run.error is None
    assert run.states[-1] == ("stopped", None)
    # Four seconds of media take about four seconds (a file read at full speed takes a fraction).
    assert 3.0 <= elapsed <= 8.0, elapsed
