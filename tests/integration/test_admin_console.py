"""The admin as an operator's console, in headless Chromium on a real platform (API server, engine
node, Celery worker): Debian's ffmpeg publishes; the operator finds the stream from the grouped home
page, plays it on its page over HLS and WebRTC (WHEP), starts a record from the form and sees it
recording, is refused deleting it while it runs, stops it, plays the recorded MP4 from the recordings
list (range requests), deletes it with its file, and stops the stream. A screenshot of the stream
page goes to test-artifacts/."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.integration.conftest import ARTIFACTS, LiveStreamHub, log_in, wait_for
from tests.integration.test_engine import live_names, wait_live
from tests.integration.test_webrtc import WEBRTC_CHROMIUM_ARGS, publish_rtmp

pytestmark = [pytest.mark.services, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def platform(tmp_path_factory, redis_url):
    server = LiveStreamHub(tmp_path_factory.mktemp("console"), redis_url)
    server.env["STREAMHUB_WEBRTC_ICE_ADDRESSES"] = "127.0.0.1"
    server.env["STREAMHUB_WEBRTC_KEYFRAME_INTERVAL"] = "1"
    server.start(engine=True, worker=True)
    response = server.api(
        "PATCH", "/v1/vhosts/default/apps/app", json={"publishers": {"hls": {"segmentDuration": 1, "segmentCount": 5}}}
    )
    assert response.status_code == 200
    time.sleep(2.5)  # the engine's application cache: 1 s segments for streams published from now
    yield server
    server.stop()


@pytest.fixture
def page():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=WEBRTC_CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        browser.close()


def current_time(page) -> float:
    # 0 while a navigation to the player page is still under way.
    return page.evaluate("document.getElementById('player')?.currentTime ?? 0")


def wait_playing(page, seconds: float = 2.0, timeout: float = 40) -> None:
    """The video element's clock moves past ``seconds`` and keeps moving."""
    wait_for(lambda: current_time(page) > seconds, timeout, lambda: page.locator("#player-status").text_content())
    first = current_time(page)
    wait_for(lambda: current_time(page) > first + 0.5, 15, lambda: page.locator("#player-status").text_content())


def run_action(page, name: str, *ids: str) -> None:
    for pk in ids:
        page.check(f"input[name=_selected_action][value='{pk}']")
    page.select_option("select[name=action]", name)
    page.click("button[name=index]")


def test_an_operator_runs_a_live_stream_from_its_page(platform, page):
    publisher = publish_rtmp(platform, "console-cam", seconds=180)
    try:
        wait_live(platform, "console-cam", publisher)
        log_in(page, platform)

        # From the grouped home page: Live › Streams › the stream's page.
        page.goto(f"{platform.url}/admin/")
        live = page.locator("#content-main .module", has=page.locator("caption", has_text="Live"))
        live.get_by_role("link", name="Streams").click()
        row = page.locator("#result_list tr", has_text="console-cam")
        row.locator("a.stream-page").click()
        page.wait_for_url("**/live/")
        expect(page.locator("#stream-state")).to_have_text("live")

        # HLS plays; the tracks and viewers are there; the bitrate chart fills up.
        wait_playing(page)
        expect(page.locator("#stream-tracks tbody")).to_contain_text("H264")
        expect(page.locator("#stream-tracks tbody")).to_contain_text("AAC")
        expect(page.locator("#stream-viewers tr[data-protocol=hls]")).to_contain_text("1", timeout=20_000)
        wait_for(lambda: page.evaluate("window.streamPage.points") >= 3, 20)
        expect(page.locator("#bitrate-chart canvas")).to_have_count(1)
        expect(page.locator("#bitrate-in")).not_to_have_text("0 b/s")

        # WebRTC (WHEP), chosen on the page.
        page.select_option("#player-protocol", "whep")
        wait_playing(page, seconds=1.0)
        expect(page.locator("#player-status")).to_contain_text("WHEP playing 640x360")

        # A record from the form with a bad path is refused with the API's words; a good one records.
        page.fill("#record-form input[name=record_id]", "bad")
        page.fill("#record-form input[name=file_path]", "/etc/evil.mp4")
        page.click("#record-form input[type=submit]")
        expect(page.locator("#record-errors")).to_contain_text("filePath: /etc/evil.mp4: outside the media root")
        page.fill("#record-form input[name=record_id]", "console-rec")
        page.fill("#record-form input[name=file_path]", "")
        page.click("#record-form input[type=submit]")
        expect(page.locator(".messagelist .success")).to_contain_text("Started record console-rec")
        job = page.locator('#stream-jobs tr[data-job="record:console-rec"]')
        expect(job).to_have_attribute("data-state", "recording", timeout=30_000)
        expect(page.locator("#stream-events")).to_contain_text("record console-rec started")
        # A second one to MPEG-TS (played later through hls.js).
        page.fill("#record-form input[name=record_id]", "console-ts")
        page.fill("#record-form input[name=file_path]", "ts/${Stream}_${Sequence}.ts")
        page.click("#record-form input[type=submit]")
        ts_job = page.locator('#stream-jobs tr[data-job="record:console-ts"]')
        expect(ts_job).to_have_attribute("data-state", "recording", timeout=30_000)

        # A snapshot, by a media worker.
        page.click("#snapshot-form input[type=submit]")
        expect(page.locator("#snapshot img")).to_be_visible(timeout=20_000)
        wait_playing(page, seconds=0.5)
        wait_for(lambda: page.evaluate("window.streamPage.points") >= 8, 30)  # a chart worth looking at
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "admin-stream-page.png"), full_page=True)
        stream_page = page.url

        # Deleting the running record is refused; stopping it works.
        page.goto(f"{platform.url}/admin/recording/record/")
        pk, ts_pk = (
            page.locator("#result_list tr", has_text=name)
            .locator("input[name=_selected_action]")
            .get_attribute("value")
            for name in ("console-rec", "console-ts")
        )
        run_action(page, "delete_jobs_and_files", pk)
        expect(page.locator(".messagelist .error")).to_contain_text("stop it first")
        time.sleep(4)  # a few seconds of media in the files
        run_action(page, "stop_jobs", pk, ts_pk)
        expect(page.locator(".messagelist .success")).to_contain_text("Asked 2 job(s) to stop.")
        for record_id in ("console-rec", "console-ts"):
            wait_for(lambda r=record_id: platform.api("POST", "/v1/vhosts/default/apps/app:records", json={"id": r})
                     .json()["response"][0]["state"] == "stopped", 30)  # fmt: skip

        # The recordings list shows the file; it plays (MP4 by range requests) and downloads.
        page.goto(stream_page)
        page.locator('#stream-jobs tr[data-job="record:console-rec"] a', has_text="recordings").click()
        file_row = page.locator("#recording-files tbody tr").first
        expect(file_row).to_contain_text(".mp4")
        expect(file_row.locator(".size")).not_to_have_text("0\xa0bytes")
        with page.expect_download() as download:
            file_row.locator("a.download").click()
        assert download.value.suggested_filename.endswith(".mp4")
        ranges = []
        page.on(
            "request", lambda request: ranges.append(request.headers.get("range")) if "/files/" in request.url else None
        )
        file_row.locator("a.play").click()
        page.wait_for_url("**/play/")
        wait_playing(page, seconds=1.0, timeout=20)
        assert any(value and value.startswith("bytes=") for value in ranges), ranges
        media_files = list((platform.folder / "media").rglob("*.mp4"))
        assert media_files

        # The MPEG-TS recording plays through hls.js (a one-segment playlist of the file).
        page.goto(stream_page)
        page.locator('#stream-jobs tr[data-job="record:console-ts"] a', has_text="recordings").click()
        ts_row = page.locator("#recording-files tbody tr").first
        expect(ts_row).to_contain_text(".ts")
        ts_row.locator("a.play").click()
        page.wait_for_url("**/play/")
        wait_playing(page, seconds=1.0, timeout=20)
        assert page.evaluate("document.getElementById('player').src.startsWith('blob:')")  # MSE: hls.js plays it

        # Stopped now: deleted with its file.
        page.goto(f"{platform.url}/admin/recording/record/")
        run_action(page, "delete_jobs_and_files", pk)
        expect(page.locator(".messagelist .success")).to_contain_text("Deleted 1 job(s) and 1 file(s).")
        assert not any(path.exists() for path in media_files)

        # Stop the stream from its page: the publisher is disconnected.
        page.goto(stream_page)
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#stop-form input[type=submit]")
        expect(page.locator(".messagelist .success")).to_contain_text("Asked default/app/console-cam to stop.")
        wait_for(lambda: "console-cam" not in live_names(platform), 20)
    finally:
        publisher.kill()
        publisher.wait()


SEED_HISTORY = """
from datetime import timedelta
from pathlib import Path
from django.conf import settings
from django.utils import timezone
from apps.hosting.models import Application
from apps.recording.models import Record, RecordFile
app = Application.objects.get(name="app")
now = timezone.now()
old = Record.objects.create(application=app, record_id="old-rec", stream_name="gone", state="stopped",
                            finished_at=now - timedelta(days=1))
path = Path(settings.MEDIA_ROOT) / "old-rec.mp4"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_bytes(b"recorded")
RecordFile.objects.create(record=old, sequence=0, path=str(path), started_at=now - timedelta(days=1), bytes=8)
Record.objects.create(application=app, record_id="recent-rec", stream_name="gone", state="stopped", finished_at=now)
Record.objects.create(application=app, record_id="waiting-rec", stream_name="not-yet", state="ready",
                      created_at=now - timedelta(days=3))
"""


@pytest.fixture
def history_platform(tmp_path, redis_url):
    """A platform whose beat prunes finished jobs older than 12 h, checking every second."""
    server = LiveStreamHub(tmp_path, redis_url)
    server.env["STREAMHUB_JOB_HISTORY_DAYS"] = "0.5"
    server.env["STREAMHUB_JOB_PRUNE_INTERVAL"] = "1"
    server.start()
    server.manage("shell", "-c", SEED_HISTORY)
    yield server
    server.stop()


def test_beat_prunes_old_history_and_the_admin_refuses_deleting_a_waiting_job(history_platform, page):
    platform = history_platform
    log_in(page, platform)
    page.goto(f"{platform.url}/admin/recording/record/")
    expect(page.locator("#result_list")).to_contain_text("old-rec")

    platform.start_worker()  # with beat: the prune runs within a second or two
    wait_for(lambda: page.reload() or "old-rec" not in page.locator("#result_list").text_content(), 30)
    listed = page.locator("#result_list").text_content()
    assert "recent-rec" in listed and "waiting-rec" in listed  # within the retention; not finished
    assert (platform.folder / "media" / "old-rec.mp4").read_bytes() == b"recorded"  # the file stays

    row = page.locator("#result_list tr", has_text="waiting-rec")
    pk = row.locator("input[name=_selected_action]").get_attribute("value")
    run_action(page, "delete_jobs", pk)
    expect(page.locator(".messagelist .error")).to_contain_text(
        "Not deleted: waiting-rec (default/app/not-yet) is ready (waiting for the stream): stop it first."
    )
    expect(page.locator("#result_list")).to_contain_text("waiting-rec")
