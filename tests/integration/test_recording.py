"""Recording with the real stack: ffmpeg publishes, a Celery worker records, ffprobe judges the files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for
from tests.integration.test_engine import ffprobe, publish, wait_live

pytestmark = pytest.mark.services
APP = "/v1/vhosts/default/apps/app"


def record_state(platform, record_id: str) -> dict:
    [record] = platform.api("POST", f"{APP}:records", json={"id": record_id}).json()["response"]
    return record


def duration(path: Path) -> float:
    return float(ffprobe(str(path))["format"]["duration"])


def test_a_reserved_record_starts_with_the_stream_and_splits_by_interval(live_platform):
    body = {
        "id": "reserved",
        "stream": {"name": "later"},
        "interval": 2000,
        "filePath": "rec/${Stream}/${Sequence}.mp4",
        "infoPath": "rec/${Stream}/info.xml",
    }
    response = live_platform.api("POST", f"{APP}:startRecord", json=body)
    assert response.status_code == 200 and response.json()["response"]["state"] == "ready"

    publisher = publish(live_platform, "later", seconds=8)
    try:
        wait_live(live_platform, "later", publisher)
        wait_for(
            lambda: record_state(live_platform, "reserved")["state"] == "recording",
            5,
            lambda: live_platform.log("worker"),
        )
        publisher.wait(timeout=30)
    finally:
        publisher.kill()
    # The stream ended: the record waits for it again (reserved), with its files complete.
    wait_for(
        lambda: record_state(live_platform, "reserved")["state"] == "ready", 20, lambda: live_platform.log("worker")
    )
    assert live_platform.api("POST", f"{APP}:stopRecord", json={"id": "reserved"}).status_code == 200
    record = wait_for(lambda: (r := record_state(live_platform, "reserved"))["state"] == "stopped" and r, 10)

    folder = live_platform.folder / "media" / "rec" / "later"
    files = sorted(folder.glob("*.mp4"), key=lambda path: int(path.stem))
    assert len(files) >= 3, list(folder.iterdir())
    durations = [duration(path) for path in files]
    for seconds in durations[:-1]:
        assert 1.5 <= seconds <= 3.0
    total = sum(durations)
    assert total >= 5.0
    assert abs(total * 1000 - record["totalRecordTime"]) <= 0.1 * record["totalRecordTime"]
    assert record["sequence"] == len(files) - 1
    for path in files:
        streams = {stream["codec_type"]: stream for stream in ffprobe(str(path))["streams"]}
        assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"

    info = ET.parse(folder / "info.xml").getroot()
    assert [item.findtext("filePath") for item in info.findall("file")] == [str(path) for path in files]
    assert info.find("file").findtext("id") == "reserved"


def test_a_live_stream_records_to_one_file_until_stopped(live_platform):
    publisher = publish(live_platform, "now", seconds=30)
    try:
        wait_live(live_platform, "now", publisher)
        response = live_platform.api(
            "POST", f"{APP}:startRecord", json={"id": "single", "stream": {"name": "now"}, "filePath": "one/${Id}.mp4"}
        )
        assert response.status_code == 200
        wait_for(
            lambda: record_state(live_platform, "single")["state"] == "recording",
            5,
            lambda: live_platform.log("worker"),
        )
        wait_for(lambda: record_state(live_platform, "single")["recordTime"] >= 4000, 15)
        assert live_platform.api("POST", f"{APP}:stopRecord", json={"id": "single"}).status_code == 200
        record = wait_for(lambda: (r := record_state(live_platform, "single"))["state"] == "stopped" and r, 10)
    finally:
        publisher.kill()
    path = live_platform.folder / "media" / "one" / "single.mp4"
    seconds = duration(path)
    assert seconds >= 4.0
    assert abs(seconds * 1000 - record["totalRecordTime"]) <= 0.1 * record["totalRecordTime"]
    assert record["totalRecordBytes"] == path.stat().st_size


def test_a_record_survives_kill_9_of_its_worker(live_platform):
    body = {"id": "crash", "stream": {"name": "crash"}, "interval": 2000, "filePath": "crash/${Sequence}.mp4"}
    publisher = publish(live_platform, "crash", seconds=60)
    try:
        wait_live(live_platform, "crash", publisher)
        assert live_platform.api("POST", f"{APP}:startRecord", json=body).status_code == 200
        wait_for(lambda: record_state(live_platform, "crash")["sequence"] >= 1, 15, lambda: live_platform.log("worker"))

        live_platform.kill("worker")
        before = record_state(live_platform, "crash")
        assert before["state"] == "recording"  # nobody has noticed yet: the lease has not run out
        live_platform.start_worker()
        # The lease (5 s here) runs out, beat resumes the job, it continues with its next file.
        resumed = wait_for(
            lambda: (r := record_state(live_platform, "crash"))["state"] == "recording" and r["sequence"] > before["sequence"] and r,
            40, lambda: live_platform.log("worker"),
        )  # fmt: skip
        wait_for(lambda: record_state(live_platform, "crash")["sequence"] > resumed["sequence"], 15)
        assert live_platform.api("POST", f"{APP}:stopRecord", json={"id": "crash"}).status_code == 200
        wait_for(lambda: record_state(live_platform, "crash")["state"] == "stopped", 15)
    finally:
        publisher.kill()

    folder = live_platform.folder / "media" / "crash"
    finished = sorted(folder.glob("[0-9]*.mp4"), key=lambda path: int(path.stem))
    sequences = [int(path.stem) for path in finished]
    # Every file before the crash, and those after it, are complete; at most the one being
    # written at the crash is missing (left under its temporary name).
    assert len(set(range(max(sequences) + 1)) - set(sequences)) <= 1, sequences
    assert max(sequences) >= 2
    durations = [duration(path) for path in finished]
    assert all(1.5 <= seconds <= 3.0 for seconds in durations[:-1]), durations
    assert durations[-1] > 0  # stopped soon after its file began


def test_variant_names_choose_the_recorded_tracks(live_platform):
    # "aac" is the audio encode of the shipped application's output profile: an audio-only file.
    body = {"id": "audio-only", "stream": {"name": "variants", "variantNames": ["aac"]}, "filePath": "v/${Id}.mp4"}
    publisher = publish(live_platform, "variants", seconds=40)
    try:
        wait_live(live_platform, "variants", publisher)
        assert live_platform.api("POST", f"{APP}:startRecord", json=body).status_code == 200
        wait_for(
            lambda: record_state(live_platform, "audio-only")["recordTime"] >= 2000,
            20,
            lambda: live_platform.log("worker"),
        )
        assert live_platform.api("POST", f"{APP}:stopRecord", json={"id": "audio-only"}).status_code == 200
        wait_for(lambda: record_state(live_platform, "audio-only")["state"] == "stopped", 15)
    finally:
        publisher.kill()
    streams = ffprobe(str(live_platform.folder / "media" / "v" / "audio-only.mp4"))["streams"]
    assert [stream["codec_type"] for stream in streams] == ["audio"]


def test_every_job_comes_back_after_a_restart_of_every_process(live_platform):
    """API server, engine and worker all stop (as an operator's restart does): the record that was
    running and the one still reserved ("held") are both there afterwards, and both record the streams.
    Last in the module: it restarts the module's platform (rather than starting one of its own)."""
    platform = live_platform
    publisher = publish(platform, "restart1", seconds=60)
    try:
        wait_live(platform, "restart1", publisher)
        for record_id, stream in (("running", "restart1"), ("held", "restart2")):
            body = {"id": record_id, "stream": {"name": stream}, "filePath": "restart/${Id}_${Sequence}.mp4"}
            assert platform.api("POST", f"{APP}:startRecord", json=body).status_code == 200
        wait_for(lambda: record_state(platform, "running")["recordTime"] >= 1000, 20, lambda: platform.log("worker"))
        platform.stop()
    finally:
        publisher.kill()

    platform.start(engine=True, worker=True)
    assert {record_state(platform, record_id)["state"] for record_id in ("running", "held")} <= {
        "ready", "recording"
    }  # fmt: skip
    publishers = [publish(platform, name, seconds=60) for name in ("restart1", "restart2")]
    try:
        for name, process in zip(("restart1", "restart2"), publishers, strict=True):
            wait_live(platform, name, process)

        def both_recording() -> bool:
            states = [record_state(platform, record_id) for record_id in ("running", "held")]
            return all(state["state"] == "recording" and state["recordTime"] >= 1000 for state in states)

        wait_for(both_recording, 30, lambda: platform.log("worker")[-4000:])
        assert record_state(platform, "running")["sequence"] >= 1  # a new file after the restart
        for record_id in ("running", "held"):
            assert platform.api("POST", f"{APP}:stopRecord", json={"id": record_id}).status_code == 200
        wait_for(lambda: all(record_state(platform, r)["state"] == "stopped" for r in ("running", "held")), 20)
    finally:
        for process in publishers:
            process.kill()
    files = sorted((platform.folder / "media" / "restart").glob("*.mp4"))
    names = {path.name for path in files}
    assert {"running_0.mp4", "running_1.mp4", "held_0.mp4"} <= names, names
    assert all(duration(path) > 0.5 for path in files)
