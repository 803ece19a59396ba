"""The Recorder against a real engine node fed by ffmpeg: files checked with ffprobe.

One 7 s publish is recorded by several recorders at once (single MP4, 2 s intervals with either
segmentation rule, MPEG-TS, classic MP4, audio only, a schedule on a fake clock, a stop after 3 s,
and a worker process killed mid-file); the tests then look at what each one wrote.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from media_engine.jobs.record import RecordedFile, Recorder, SourceUnavailable, parse_schedule

from .conftest import EXPECTED_CODECS, EngineThread, codecs, ffprobe, free_port, publish_command

PUBLISH_SECONDS = 7
REPO = Path(__file__).resolve().parents[3]


@dataclass
class Run:
    """One recorder of the shared publish, with what its callbacks saw."""

    name: str
    folder: Path
    options: dict[str, Any]
    started: list[RecordedFile] = field(default_factory=list)
    finished: list[RecordedFile] = field(default_factory=list)
    progress: list[tuple[float, RecordedFile]] = field(default_factory=list)
    result: list[RecordedFile] | None = None
    error: BaseException | None = None
    returned_at: float | None = None

    def recorder(self, url: str) -> Recorder:
        suffix = self.options.pop("suffix", ".mp4")
        self.folder.mkdir(parents=True)
        return Recorder(
            url,
            lambda sequence, started_at: self.folder / f"{sequence}{suffix}",
            on_file_started=self.started.append,
            on_file_finished=self.finished.append,
            on_progress=lambda recorded: self.progress.append((time.monotonic(), recorded)),
            **self.options,
        )

    def run(self, url: str) -> None:
        try:
            self.result = self.recorder(url).run()
        except BaseException as error:  # noqa: BLE001 - reported by the tests
            self.error = error
        self.returned_at = time.monotonic()


class FakeClock:
    """Wall time that starts (at its first call) 1.5 s before a whole minute, then runs on."""

    def __init__(self) -> None:
        self.base = datetime(2024, 5, 1, 12, 0, 58, 500_000, tzinfo=UTC)
        self.started: float | None = None

    def __call__(self) -> datetime:
        if self.started is None:
            self.started = time.monotonic()
        return self.base + timedelta(seconds=time.monotonic() - self.started)


@dataclass
class Recordings:
    runs: dict[str, Run]
    stop_requested_at: float
    killed_file: Path

    def __getitem__(self, name: str) -> Run:
        run = self.runs[name]
        assert run.error is None, f"{name}: {run.error!r}"
        return run


KILLED_WORKER = """
import sys
from pathlib import Path
from media_engine.jobs.record import Recorder
Recorder(sys.argv[1], lambda sequence, started_at: Path(sys.argv[2])).run()
"""


@pytest.fixture(scope="module")
def recordings(engine: EngineThread, tmp_path_factory: pytest.TempPathFactory) -> Recordings:
    root = tmp_path_factory.mktemp("records")
    stop_after = 3.0
    stop_requested_at: list[float] = []

    def stop_after_three_seconds() -> bool:
        if time.monotonic() - began < stop_after:
            return False
        if not stop_requested_at:
            stop_requested_at.append(time.monotonic())
        return True

    clock = FakeClock()
    runs = {
        name: Run(name, root / name, options)
        for name, options in {
            "single": {},
            "continuity": {"interval_ms": 2000, "segmentation_rule": "continuity", "first_sequence": 5},
            "discontinuity": {"interval_ms": 2000, "segmentation_rule": "discontinuity"},
            "ts": {"interval_ms": 2000, "segmentation_rule": "continuity", "suffix": ".ts"},
            "audio": {"track_filter": ["audio"]},
            "classic": {"interval_ms": 2000, "segmentation_rule": "continuity", "fragmented_mp4": False},
            "schedule": {"schedule": "0 */1 *", "clock": clock},
            "stopped": {"should_stop": stop_after_three_seconds},
        }.items()
    }
    url = engine.url("shared")
    publisher = subprocess.Popen(publish_command(url, PUBLISH_SECONDS), stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not engine.is_live("shared"):
        assert publisher.poll() is None and time.monotonic() < deadline, "the stream did not go live"
        time.sleep(0.02)
    began = time.monotonic()
    threads = [threading.Thread(target=run.run, args=(url,)) for run in runs.values()]
    for thread in threads:
        thread.start()
    killed_file = root / "killed.mp4"
    worker = subprocess.Popen([sys.executable, "-c", KILLED_WORKER, url, str(killed_file)], cwd=REPO)
    time.sleep(4.5)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    for thread in threads:
        thread.join(PUBLISH_SECONDS + 10)
    assert publisher.wait(10) == 0
    return Recordings(runs, stop_requested_at[0], killed_file)


def probe_duration(path: Path) -> float:
    return float(ffprobe(path)["format"]["duration"])


def test_a_live_publish_records_to_one_mp4_with_its_duration(recordings: Recordings):
    run = recordings["single"]
    assert len(run.result) == 1 and run.finished == run.result
    recorded = run.result[0]
    probe = ffprobe(recorded.path)
    assert codecs(probe) == EXPECTED_CODECS
    assert probe["format"]["format_name"].startswith("mov,mp4")
    duration = float(probe["format"]["duration"])
    assert abs(duration * 1000 - recorded.duration_ms) <= 0.1 * recorded.duration_ms
    assert PUBLISH_SECONDS - 1.5 <= duration <= PUBLISH_SECONDS + 0.5
    assert recorded.bytes == recorded.path.stat().st_size > 50_000
    data = recorded.path.read_bytes()
    assert data.find(b"moov") < data.find(b"moof")  # fragmented, moov in front
    assert recorded.started_at.tzinfo is not None and recorded.finished_at > recorded.started_at


def test_interval_splits_at_keyframes_into_complete_files(recordings: Recordings):
    run = recordings["discontinuity"]
    files = run.result
    assert len(files) >= 3
    assert [f.sequence for f in files] == list(range(len(files)))
    durations = [probe_duration(f.path) for f in files]
    for recorded, duration in zip(files, durations, strict=True):
        assert codecs(ffprobe(recorded.path)) == EXPECTED_CODECS
        assert abs(duration * 1000 - recorded.duration_ms) <= 150
    for duration in durations[:-1]:  # keyframes every second: cuts at 2 s
        assert 1.85 <= duration <= 2.2, durations
    single = recordings["single"].result[0].duration_ms / 1000
    assert abs(sum(durations) - single) <= 0.5, (durations, single)


def test_continuity_keeps_timestamps_running_and_discontinuity_restarts_them(recordings: Recordings):
    continuous = recordings["continuity"].result
    restarted = recordings["discontinuity"].result
    assert [f.sequence for f in continuous[:3]] == [5, 6, 7]  # first_sequence
    second_continuous = ffprobe(continuous[1].path)["format"]
    second_restarted = ffprobe(restarted[1].path)["format"]
    assert 1.8 <= float(second_continuous["start_time"]) <= 2.2, second_continuous
    assert float(second_restarted["start_time"]) <= 0.1, second_restarted
    third = ffprobe(continuous[2].path)["format"]
    assert 3.8 <= float(third["start_time"]) <= 4.2
    assert codecs(ffprobe(continuous[1].path)) == EXPECTED_CODECS


def test_ts_files(recordings: Recordings):
    files = recordings["ts"].result
    assert len(files) >= 3
    for recorded in files:
        probe = ffprobe(recorded.path)
        assert probe["format"]["format_name"] == "mpegts"
        assert codecs(probe) == EXPECTED_CODECS
    assert 1.8 <= float(ffprobe(files[1].path)["format"]["start_time"]) <= 2.2


def test_classic_mp4_files_on_request(recordings: Recordings):
    files = recordings["classic"].result
    assert len(files) >= 3
    for recorded in files:
        assert codecs(ffprobe(recorded.path)) == EXPECTED_CODECS
    assert 1.8 <= float(ffprobe(files[1].path)["format"]["start_time"]) <= 2.2
    # moov at the end, no fragments
    data = files[0].path.read_bytes()
    assert b"moof" not in data and data.rfind(b"moov") > data.find(b"mdat")


def test_track_filter_keeps_only_audio(recordings: Recordings):
    (recorded,) = recordings["audio"].result
    probe = ffprobe(recorded.path)
    assert codecs(probe) == {("audio", "aac", None, None)}
    assert PUBLISH_SECONDS - 1.5 <= float(probe["format"]["duration"]) <= PUBLISH_SECONDS + 0.5


def test_schedule_splits_when_the_wall_clock_crosses_a_minute(recordings: Recordings):
    files = recordings["schedule"].result
    assert len(files) == 2, files
    boundary = datetime(2024, 5, 1, 12, 1, 0, tzinfo=UTC)
    assert files[0].started_at - datetime(2024, 5, 1, 12, 0, 58, 500_000, tzinfo=UTC) < timedelta(milliseconds=5)
    assert boundary <= files[1].started_at < boundary + timedelta(seconds=1.5)
    assert files[0].finished_at == files[1].started_at or files[0].finished_at <= files[1].started_at
    for recorded in files:
        assert codecs(ffprobe(recorded.path)) == EXPECTED_CODECS


def test_callbacks_announce_each_file_and_progress_at_most_once_a_second(recordings: Recordings):
    run = recordings["continuity"]
    assert [f.sequence for f in run.started] == [f.sequence for f in run.finished] == [f.sequence for f in run.result]
    assert all(f.finished_at is None and f.bytes == 0 for f in run.started)
    single = recordings["single"]
    times = [at for at, _ in single.progress]
    assert len(times) >= PUBLISH_SECONDS - 3
    assert all(later - earlier >= 0.99 for earlier, later in zip(times, times[1:], strict=False))
    sizes = [recorded.duration_ms for _, recorded in single.progress]
    assert sizes == sorted(sizes) and sizes[-1] > 3000
    assert single.progress[-1][1].bytes > 0


def test_should_stop_ends_the_recording_with_a_readable_file(recordings: Recordings):
    run = recordings["stopped"]
    (recorded,) = run.result
    assert run.returned_at - recordings.stop_requested_at < 1.0
    probe = ffprobe(recorded.path)
    assert codecs(probe) == EXPECTED_CODECS
    assert 2.0 <= float(probe["format"]["duration"]) <= 3.6


def test_the_mp4_of_a_killed_worker_is_readable(recordings: Recordings):
    # Fragmented MP4: every complete GOP is on disk with the moov in front.
    probe = ffprobe(recordings.killed_file)
    assert codecs(probe) == EXPECTED_CODECS
    assert float(probe["format"]["duration"]) >= 2.0


def test_stop_is_seen_while_the_source_stalls(engine: EngineThread, publish, tmp_path: Path):
    publisher = publish("stalling")
    stop = threading.Event()
    recorder = Recorder(
        engine.url("stalling"), lambda sequence, started_at: tmp_path / f"{sequence}.mp4", should_stop=stop.is_set
    )
    thread = threading.Thread(target=recorder.run)
    thread.start()
    time.sleep(2.5)
    publisher.send_signal(signal.SIGSTOP)  # the engine keeps the connection, no more packets
    try:
        time.sleep(1.0)
        stop.set()
        stopped_at = time.monotonic()
        thread.join(5)
        assert not thread.is_alive()
        assert time.monotonic() - stopped_at < 0.8
    finally:
        publisher.send_signal(signal.SIGCONT)
    (recorded,) = recorder.files
    assert codecs(ffprobe(recorded.path)) == EXPECTED_CODECS
    assert recorded.duration_ms >= 1500


def test_a_missing_source_raises_source_unavailable_quickly(engine: EngineThread, tmp_path: Path):
    started = time.monotonic()
    recorder = Recorder(engine.url("nobody"), lambda sequence, started_at: tmp_path / "x.mp4", open_timeout=5)
    with pytest.raises(SourceUnavailable, match="nobody"):
        recorder.run()
    assert time.monotonic() - started < 2
    assert list(tmp_path.iterdir()) == []


def test_a_refused_source_raises_source_unavailable(tmp_path: Path):
    with pytest.raises(SourceUnavailable):
        Recorder(f"rtmp://127.0.0.1:{free_port()}/app/x", lambda s, a: tmp_path / "x.mp4", open_timeout=2).run()


@pytest.mark.parametrize("text", ["0 */1 *", "0 0 */1", "*/10 * *", "0 0,30 *", "30 5-10/5 0-23"])
def test_parse_schedule_accepts(text: str):
    parse_schedule(text)


@pytest.mark.parametrize(
    "text", ["x y", "", "0 */1", "0 */1 * *", "60 * *", "0 60 *", "0 0 24", "*/0 * *", "a * *", "5-1 * *"]
)
def test_parse_schedule_rejects(text: str):
    with pytest.raises(ValueError, match="schedule"):
        parse_schedule(text)


def test_schedule_next_boundary():
    at = datetime(2024, 5, 1, 12, 0, 58, 500_000, tzinfo=UTC)
    assert parse_schedule("0 */1 *").next_after(at) == datetime(2024, 5, 1, 12, 1, 0, tzinfo=UTC)
    assert parse_schedule("0 0 */1").next_after(at) == datetime(2024, 5, 1, 13, 0, 0, tzinfo=UTC)
    assert parse_schedule("0 0 0").next_after(at) == datetime(2024, 5, 2, 0, 0, 0, tzinfo=UTC)
    assert parse_schedule("*/15 * *").next_after(at.replace(second=15, microsecond=0)) == at.replace(
        second=30, microsecond=0
    )
    late = datetime(2024, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
    assert parse_schedule("0 */1 *").next_after(late) == datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)


def test_recorder_rejects_bad_arguments(tmp_path: Path):
    with pytest.raises(ValueError, match="segmentation"):
        Recorder("rtmp://127.0.0.1/app/x", lambda s, a: tmp_path / "x.mp4", segmentation_rule="sometimes")
    with pytest.raises(ValueError, match="schedule"):
        Recorder("rtmp://127.0.0.1/app/x", lambda s, a: tmp_path / "x.mp4", schedule="x y")
    with pytest.raises(ValueError, match="track filter"):
        Recorder("rtmp://127.0.0.1/app/x", lambda s, a: tmp_path / "x.mp4", track_filter=["subtitles"])
