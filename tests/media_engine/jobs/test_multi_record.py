"""The MultiRecorder against a real engine node fed by two ffmpeg publishers of different picture
sizes: one member first, the second added later, the first removed, the second's stream ending.
Each change of the member set is a new MP4; ffprobe judges the tracks of every file."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from media_engine.jobs.multi_record import MultiRecordedFile, MultiRecorder

from .conftest import EngineThread, ffprobe


def publisher_command(url: str, size: str, seconds: int = 60) -> list[str]:
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25", "-f", "lavfi", "-i", "sine",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-t", str(seconds), "-f", "flv", url,
    ]  # fmt: skip


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def publishers(engine: EngineThread) -> Iterator[Callable[[str, str], subprocess.Popen]]:
    processes: list[subprocess.Popen] = []

    def start(name: str, size: str) -> subprocess.Popen:
        process = subprocess.Popen(publisher_command(engine.url(name), size), stdin=subprocess.DEVNULL)
        processes.append(process)
        wait_until(lambda: engine.is_live(name), 15, f"{name} to go live")
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
        process.wait(10)


def video_sizes(probe: dict) -> list[tuple[int, int]]:
    return [(s["width"], s["height"]) for s in probe["streams"] if s["codec_type"] == "video"]


def kinds(probe: dict) -> list[str]:
    return sorted(s["codec_type"] for s in probe["streams"])


def test_members_joining_leaving_and_ending_make_one_file_per_member_set(engine, publishers, tmp_path: Path):
    first = publishers("alpha", "320x240")
    second = publishers("beta", "480x270")
    sources = {"alpha-session": engine.url("alpha"), "beta-session": engine.url("beta")}
    wanted = ["alpha-session"]
    started: list[MultiRecordedFile] = []
    finished: list[MultiRecordedFile] = []
    stop = threading.Event()
    recorder = MultiRecorder(
        lambda: list(wanted),
        sources.__getitem__,
        lambda sequence: tmp_path / "out" / ("multi-recorder___test.mp4" if sequence == 0 else f"x-{sequence}.mp4"),
        should_stop=stop.is_set,
        on_file_started=started.append,
        on_file_finished=finished.append,
    )
    result: list[MultiRecordedFile] = []
    thread = threading.Thread(target=lambda: result.extend(recorder.run()))
    thread.start()
    try:
        wait_until(lambda: len(started) == 1, 20, "the first file")
        time.sleep(3)
        wanted.append("beta-session")  # a member added later
        wait_until(lambda: len(started) == 2, 20, "the file of both members")
        time.sleep(4)
        wanted.remove("alpha-session")
        wait_until(lambda: len(started) == 3, 20, "the file of the second member alone")
        time.sleep(3)
        second.terminate()  # its stream ends: the file is finished, no member is left
        wait_until(lambda: len(finished) == 3, 30, "the end of the last file")
        assert first.poll() is None
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()

    assert [f.members for f in started] == [["alpha-session"], ["alpha-session", "beta-session"], ["beta-session"]]
    assert [f.sequence for f in result] == [0, 1, 2]
    assert result[0].path.name == "multi-recorder___test.mp4"

    alone, both, last = (ffprobe(f.path) for f in result)
    assert kinds(alone) == ["audio", "video"] and video_sizes(alone) == [(320, 240)]
    assert kinds(both) == ["audio", "audio", "video", "video"]
    assert video_sizes(both) == [(320, 240), (480, 270)]
    assert {s["codec_name"] for s in both["streams"]} == {"h264", "aac"}
    handlers = [s["tags"]["handler_name"] for s in both["streams"]]
    assert handlers == ["alpha-session", "alpha-session", "beta-session", "beta-session"]
    assert kinds(last) == ["audio", "video"] and video_sizes(last) == [(480, 270)]

    # Durations: what was recorded of each phase (a phase's file starts at a keyframe after the change).
    for probe, (low, high) in zip((alone, both, last), ((1.5, 8), (2.5, 10), (1.5, 8)), strict=True):
        assert low < float(probe["format"]["duration"]) < high, probe["format"]
        for stream in probe["streams"]:
            assert float(stream["duration"]) > low - 1, stream
    # One time line: the newcomer's file starts with the GOP the engine had cached for it (up to
    # ~1.5 s before it joined, with the probe); the first member goes on at its next keyframe.
    starts = [float(s["start_time"]) for s in both["streams"] if s["codec_type"] == "video"]
    assert starts[1] == 0 and starts[0] < 2, starts
    # Fragmented: what a killed worker leaves behind plays up to its last complete fragment.
    cut = tmp_path / "cut.mp4"
    data = result[1].path.read_bytes()
    fragments = [match.start() for match in re.finditer(b"moof", data)]
    # Cut two thirds in, but never before the third fragment starts (the moov and two whole
    # fragments are in): on a loaded machine a first fragment can be long.
    assert len(fragments) >= 3, f"{len(fragments)} fragments"
    cut.write_bytes(data[: max(result[1].bytes * 2 // 3, fragments[2] - 4)])
    assert video_sizes(ffprobe(cut)) == [(320, 240), (480, 270)]
    assert float(ffprobe(cut)["format"]["duration"]) > 1
    for recorded in result:
        assert recorded.bytes == recorded.path.stat().st_size > 10_000
        assert recorded.duration_ms > 1000


def test_members_added_one_after_the_other_share_the_first_file_from_their_start(engine, publishers, tmp_path):
    publishers("gamma", "320x240")
    publishers("delta", "480x270")
    wanted = ["gamma-session"]
    finished: list[MultiRecordedFile] = []
    stop = threading.Event()
    recorder = MultiRecorder(
        lambda: list(wanted),
        {"gamma-session": engine.url("gamma"), "delta-session": engine.url("delta")}.__getitem__,
        lambda sequence: tmp_path / f"{sequence}.mp4",
        should_stop=stop.is_set,
        on_file_finished=finished.append,
    )
    thread = threading.Thread(target=recorder.run)
    thread.start()
    try:
        time.sleep(0.6)  # the next API call
        wanted.append("delta-session")
        wait_until(lambda: (tmp_path / "0.mp4").exists(), 20, "the file")
        time.sleep(3)
    finally:
        stop.set()
        thread.join(30)
    [recorded] = finished
    assert recorded.members == ["gamma-session", "delta-session"]
    probe = ffprobe(recorded.path)
    assert video_sizes(probe) == [(320, 240), (480, 270)]
    # Each starts with the GOP it held back while the joins settled: both from the file's start.
    starts = sorted(float(s["start_time"]) for s in probe["streams"] if s["codec_type"] == "video")
    assert starts[0] == 0 and starts[1] < 1.0, starts
