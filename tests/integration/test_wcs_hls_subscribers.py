"""WCS /hls/subscribers with the real stack (issue #20 item 7): ffmpeg publishes, two HTTP players
with their own User-Agent fetch the HLS playlist and segments, and the API lists one HLSSubscriber per
player with its address, port and User-Agent, as the engine's heartbeats report them; once the players
stop and the viewer window (lowered here to 3 s) passes, the list is empty again."""

from __future__ import annotations

import threading

import pytest
import requests

from tests.integration.conftest import LiveStreamHub, wait_for
from tests.integration.test_engine import publish, wait_live

pytestmark = pytest.mark.services

AGENTS = ("PlayerOne/1.0 (test)", "PlayerTwo/2.0 (test)")


@pytest.fixture(scope="module")
def platform(tmp_path_factory, redis_url):
    """API server and engine node; an HLS viewer counts until 3 s after its last request."""
    server = LiveStreamHub(tmp_path_factory.mktemp("hlssubs"), redis_url)
    server.env["STREAMHUB_HLS_VIEWER_WINDOW"] = "3"
    server.start(engine=True)
    yield server
    server.stop()


def wcs(platform, method: str, body: dict) -> requests.Response:
    return requests.post(f"{platform.url}/rest-api/{method}", json=body, timeout=20)


def play(platform, name: str, agent: str, stop: threading.Event, fetched: list) -> None:
    """An HLS player: reload the playlist and fetch its newest segment every second, as ``agent``."""
    base = f"{platform.media}/app/{name}"
    with requests.Session() as http:
        http.headers["User-Agent"] = agent
        while not stop.is_set():
            playlist = http.get(f"{base}/ts:playlist.m3u8", timeout=20)
            segments = [line for line in playlist.text.splitlines() if line.endswith(".ts")]
            if playlist.status_code == 200 and segments:
                segment = http.get(f"{base}/{segments[-1]}", timeout=20)
                fetched.append((agent, segment.status_code, len(segment.content)))
            stop.wait(1.0)


def test_hls_subscribers_lists_each_player_with_its_address_and_user_agent_until_it_leaves(platform):
    publisher = publish(platform, "subs", seconds=90)
    stop = threading.Event()
    fetched: list = []
    players = [threading.Thread(target=play, args=(platform, "subs", agent, stop, fetched)) for agent in AGENTS]
    try:
        wait_live(platform, "subs", publisher)
        unwatched = wcs(platform, "hls/subscribers", {"hlsId": "subs"})
        assert (unwatched.status_code, unwatched.json()) == (200, [])

        for player in players:
            player.start()

        def two_listed():
            response = wcs(platform, "hls/subscribers", {"hlsId": "subs"})
            return response.json() if response.status_code == 200 and len(response.json()) == 2 else None

        subscribers = wait_for(two_listed, 30, lambda: f"fetched {fetched[-4:]}")
        assert {agent for agent, status, size in fetched if status == 200 and size > 0} == set(AGENTS)
        assert sorted(s["userAgent"] for s in subscribers) == sorted(AGENTS)
        assert {(s["ip"], s["hlsId"], s["profileName"], s["active"]) for s in subscribers} == {
            ("127.0.0.1", "subs", "source", True)
        }
        assert all(s["port"] > 0 for s in subscribers)
        assert len({s["id"] for s in subscribers}) == 2
        found = wcs(platform, "hls/find_all", {}).json()
        assert [(h["name"], h["subscribers"]) for h in found] == [("subs", 2)]
        page = wcs(platform, "hls/subscribers", {"hlsId": "subs", "offset": 1, "size": 5}).json()
        assert [s["id"] for s in page] == [subscribers[1]["id"]]

        stop.set()
        for player in players:
            player.join(30)

        def empty():
            response = wcs(platform, "hls/subscribers", {"hlsId": "subs"})
            return response.status_code == 200 and response.json() == []

        wait_for(empty, 20, lambda: wcs(platform, "hls/subscribers", {"hlsId": "subs"}).text)
        assert wcs(platform, "hls/find_all", {}).json()[0]["subscribers"] == 0
    finally:
        stop.set()
        publisher.kill()
        publisher.wait()
