"""WCS /multipleRecorder/* with the real stack: two ffmpeg publishers of different picture sizes,
a recorder started and both streams added through the API, a Celery worker records, ffprobe judges
the MP4: a video and an audio track per stream, at each stream's size. WCS v3's startup is a job,
done once a worker runs the recorder."""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import wait_for
from tests.integration.test_engine import ffprobe, publish, wait_live
from tests.integration.test_wcs import wcs
from tests.integration.test_wcs_v3 import job_state, v3

pytestmark = pytest.mark.services
URI = "multi-recorder://conference"


def media_session_id(platform, name: str) -> str:
    [stream] = wcs(platform, "stream/find", {"name": name}).json()
    return stream["mediaSessionId"]


def test_two_streams_are_recorded_into_one_mp4_with_a_track_each(live_platform):
    publishers = [publish(live_platform, "left", seconds=60), publish(live_platform, "right", 60, size="320x240")]
    folder = live_platform.folder / "media" / "multi-recorder"
    try:
        for name, publisher in zip(("left", "right"), publishers, strict=True):
            wait_live(live_platform, name, publisher)
        sessions = [media_session_id(live_platform, name) for name in ("left", "right")]

        assert wcs(live_platform, "multipleRecorder/startup", {"uri": URI}).status_code == 200
        for session in sessions:
            response = wcs(live_platform, "multipleRecorder/add", {"uri": URI, "mediaSessionId": session})
            assert response.status_code == 200, response.text
        response = wcs(live_platform, "multipleRecorder/find_all")
        assert response.status_code == 200
        assert response.json() == [
            {"mediaSessionsId": sessions, "uri": URI, "fileName": "multi-recorder___conference.mp4"}
        ]
        refused = wcs(live_platform, "multipleRecorder/add", {"uri": URI, "mediaSessionId": sessions[0]})
        assert refused.status_code == 409

        # The worker writes (a new file once both streams are open, if they joined one by one).
        wait_for(
            lambda: folder.is_dir() and any(p.stat().st_size > 50_000 for p in folder.glob("*.mp4")),
            30,
            lambda: live_platform.log("worker")[-3000:],
        )
        time.sleep(5)
        assert wcs(live_platform, "multipleRecorder/terminate", {"uri": URI}).status_code == 200
        wait_for(lambda: wcs(live_platform, "multipleRecorder/find_all").status_code == 404, 20)
    finally:
        for publisher in publishers:
            publisher.kill()

    files = sorted(folder.glob("*.mp4"), key=lambda path: path.stat().st_mtime)
    assert files[0].name == "multi-recorder___conference.mp4"
    probe = ffprobe(str(files[-1]))
    tracks = [(s["codec_type"], s["codec_name"], s.get("width"), s.get("height")) for s in probe["streams"]]
    assert sorted(tracks, key=str) == sorted(
        [("video", "h264", 640, 360), ("audio", "aac", None, None), ("video", "h264", 320, 240),
         ("audio", "aac", None, None)], key=str,
    )  # fmt: skip
    assert [s["tags"]["handler_name"] for s in probe["streams"]] == [sessions[0]] * 2 + [sessions[1]] * 2
    assert 3 < float(probe["format"]["duration"]) < 30


def test_v3_startup_is_done_once_a_worker_runs_the_recorder(live_platform):
    uri = "multi-recorder://v3-room"
    response = v3(live_platform, "multipleRecorder/startup", {"uri": uri}, prefer="respond-async, wait=5")
    if response.status_code == 202:  # a busy machine: the job goes on
        job_id = response.json()["id"]
        wait_for(lambda: job_state(live_platform, job_id) != "RUNNING", 30)
        assert job_state(live_platform, job_id) == "DONE"
    else:
        assert response.status_code == 200, response.text
    [job] = v3(live_platform, "jobs/find", {"method": "multipleRecorder/startup"}).json()
    assert (job["state"], job["request"]) == ("DONE", {"uri": uri})

    again = v3(live_platform, "multipleRecorder/startup", {"uri": uri}, prefer="respond-async, wait=5")
    assert (again.status_code, again.json()["message"]) == (409, "Conflict")
    assert wcs(live_platform, "multipleRecorder/find_all").json() == [
        {"mediaSessionsId": [], "uri": uri, "fileName": "multi-recorder___v3-room.mp4"}
    ]
    assert wcs(live_platform, "multipleRecorder/terminate", {"uri": uri}).status_code == 200
    wait_for(lambda: wcs(live_platform, "multipleRecorder/find_all").status_code == 404, 20)
