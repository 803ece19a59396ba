"""The admin's live dashboard in headless Chromium on a real platform: Debian's ffmpeg publishes and
watches over RTMP, the dashboard shows the node and the stream with numbers and a chart that move
over the events WebSocket, streams come and go without a reload, and the play link plays it."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from playwright.sync_api import expect

from tests.integration.conftest import ARTIFACTS, LiveStreamHub, log_in, wait_for
from tests.integration.test_engine import publish, wait_live
from tests.integration.test_metrics import rtmp_viewer

pytestmark = [pytest.mark.services, pytest.mark.browser]


@pytest.fixture(scope="module")
def platform(tmp_path_factory, redis_url):
    """API server and engine node (the dashboard needs no Celery worker), with 1 s HLS segments."""
    server = LiveStreamHub(tmp_path_factory.mktemp("dashboard"), redis_url)
    server.start(engine=True)
    response = server.api(
        "PATCH", "/v1/vhosts/default/apps/app", json={"publishers": {"hls": {"segmentDuration": 1, "segmentCount": 5}}}
    )
    assert response.status_code == 200
    yield server
    server.stop()


def stop(*processes: subprocess.Popen | None) -> None:
    for process in processes:
        if process is not None:
            process.kill()
            process.wait()


def test_the_dashboard_shows_a_live_stream_with_numbers_that_move(platform, browser_page, tmp_path):
    page = browser_page
    time.sleep(2.5)  # the engine's application cache: the 1 s segments apply to streams published from now
    publisher = publish(platform, "dashcam", seconds=90, size="320x180")
    viewer = late = None
    try:
        wait_live(platform, "dashcam", publisher)
        viewer = rtmp_viewer(platform, "dashcam")
        log_in(page, platform)
        page.goto(f"{platform.url}/admin/")
        expect(page.locator("#dashboard-status")).to_have_text("live", timeout=15_000)

        # The engine node, alive, with its stream.
        node_row = page.locator(f'#dashboard-nodes tr[data-node="{platform.env["STREAMHUB_NODE_ID"]}"]')
        expect(node_row.locator(".node-state")).to_have_text("alive")
        expect(node_row.locator(".node-streams")).to_have_text("1")

        # The stream: its viewer (ffmpeg over RTMP), bitrates and traffic, a chart filling up.
        row = page.locator('#dashboard-streams tr[data-stream-name="dashcam"]')
        expect(row).to_contain_text("default/app")
        expect(row.locator(".viewers")).to_have_text("1 (rtmp 1)", timeout=15_000)
        expect(row.locator(".bitrate-in")).not_to_have_text("0 b/s", timeout=15_000)
        expect(row.locator(".bitrate-out")).not_to_have_text("0 b/s", timeout=15_000)
        expect(row.locator(".throughput-chart canvas")).to_have_count(1)
        wait_for(lambda: int(row.get_attribute("data-points") or 0) >= 6, 20)
        # The numbers move by themselves (no reload): the traffic totals grow event after event.
        first = row.locator(".traffic").text_content()
        events = page.evaluate("window.dashboard.statsEvents")
        wait_for(lambda: row.locator(".traffic").text_content() != first, 15)
        assert page.evaluate("window.dashboard.statsEvents") > events
        # Scripts, styles and data all come from the platform itself (no CDN).
        resources = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
        assert any(url.endswith("uPlot.iife.min.js") for url in resources)
        assert all(url.startswith(platform.url) for url in resources), resources

        # A stream published while the page is open appears, and disappears when it ends.
        late = publish(platform, "latecomer", seconds=60, size="320x180")
        expect(page.locator('#dashboard-streams tr[data-stream-name="latecomer"]')).to_be_visible(timeout=20_000)
        expect(node_row.locator(".node-streams")).to_have_text("2", timeout=10_000)
        latecomer = page.locator('#dashboard-streams tr[data-stream-name="latecomer"]')
        wait_for(lambda: int(latecomer.get_attribute("data-points") or 0) >= 4, 20)
        page.screenshot(path=str(tmp_path / "admin-live-dashboard.png"), full_page=True)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(tmp_path / "admin-live-dashboard.png", ARTIFACTS / "admin-live-dashboard.png")
        stop(late)
        late = None
        expect(page.locator('#dashboard-streams tr[data-stream-name="latecomer"]')).to_have_count(0, timeout=20_000)

        # The play link opens the HLS player page, which plays the stream.
        row.locator("a.play-hls").click()
        expect(page.locator("#hls-url")).to_contain_text("/app/dashcam/ts:playlist.m3u8")
        expect(page.locator("#player-status")).to_contain_text("playing 320x180", timeout=40_000)
    finally:
        stop(viewer, late, publisher)


def test_the_dashboard_says_so_when_nothing_is_live(platform, browser_page):
    page = browser_page
    log_in(page, platform)
    wait_for(lambda: platform.api("GET", "/v1/vhosts/default/apps/app/streams").json()["response"] == [], 20)
    page.goto(f"{platform.url}/admin/")
    expect(page.locator("#dashboard-status")).to_have_text("live", timeout=15_000)
    expect(page.locator("#dashboard-no-streams")).to_be_visible()
    expect(page.locator("#dashboard-streams tbody tr")).to_have_count(0)
    expect(page.locator("#dashboard-nodes tbody tr")).to_have_count(1)
