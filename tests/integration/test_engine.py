"""The engine node with real clients: Debian's ffmpeg publishes over RTMP, ffprobe plays RTMP and HLS,
the OME API shows the stream, its tracks and counters, and the events WebSocket reports it.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import pytest
import requests

from tests.conftest import OME_AUTH
from tests.integration.conftest import ARTIFACTS, log_in, wait_for

pytestmark = pytest.mark.services


def publish(platform, name: str, seconds: float = 30, app: str = "app", size: str = "640x360") -> subprocess.Popen:
    """ffmpeg publishing a live test pattern (H.264 + AAC stereo 48 kHz) at real-time speed."""
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-t", str(seconds), "-f", "flv", f"{platform.rtmp}/{app}/{name}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def ffprobe(url: str, *extra: str) -> dict:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-rw_timeout", "10000000", *extra, "-show_streams", "-show_format",
         "-of", "json", url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def codecs(probe: dict) -> dict:
    return {stream["codec_type"]: stream for stream in probe["streams"]}


def live_names(platform) -> list[str]:
    return platform.api("GET", "/v1/vhosts/default/apps/app/streams").json()["response"]


def wait_live(platform, name: str, publisher: subprocess.Popen) -> None:
    wait_for(lambda: name in live_names(platform), 20, lambda: publisher.stderr and "")


@pytest.fixture(scope="module", autouse=True)
def short_hls_segments(live_platform):
    # One-second segments keep the test short; this also shows API changes reaching the engine.
    response = live_platform.api(
        "PATCH", "/v1/vhosts/default/apps/app", json={"publishers": {"hls": {"segmentDuration": 1, "segmentCount": 5}}}
    )
    assert response.status_code == 200
    time.sleep(2.5)  # the engine's application cache


def test_a_published_stream_plays_over_rtmp_and_hls_and_shows_in_the_api(live_platform):
    publisher = publish(live_platform, "mystream")
    try:
        wait_live(live_platform, "mystream", publisher)

        # RTMP play: several players at once, each gets the codec configuration and the video.
        with ThreadPoolExecutor(4) as pool:
            probes = list(pool.map(ffprobe, [f"{live_platform.rtmp}/app/mystream"] * 4))
        for each in probes:
            assert {"video", "audio"} <= set(codecs(each))
        probe = probes[0]
        streams = codecs(probe)
        assert streams["video"]["codec_name"] == "h264"
        assert (streams["video"]["width"], streams["video"]["height"]) == (640, 360)
        assert streams["audio"]["codec_name"] == "aac" and streams["audio"]["sample_rate"] == "48000"

        # HLS: the playlist and its segments, packaged without re-encoding.
        playlist_url = f"{live_platform.media}/app/mystream/ts:playlist.m3u8"
        wait_for(lambda: requests.get(playlist_url, timeout=5).text.count("#EXTINF") >= 3, 20)
        playlist = requests.get(playlist_url, timeout=5)
        assert playlist.headers["Access-Control-Allow-Origin"] == "*"
        assert "#EXT-X-TARGETDURATION:1" in playlist.text or "#EXT-X-TARGETDURATION:2" in playlist.text
        segment_name = [line for line in playlist.text.splitlines() if line.endswith(".ts")][-1]
        segment = requests.get(f"{live_platform.media}/app/mystream/{segment_name}", timeout=5)
        assert segment.headers["Content-Type"] == "video/mp2t"
        segment_file = live_platform.folder / "segment.ts"
        segment_file.write_bytes(segment.content)
        segment_probe = ffprobe(str(segment_file))
        assert set(codecs(segment_probe)) == {"video", "audio"}
        assert codecs(segment_probe)["video"]["width"] == 640
        assert 0.8 <= float(segment_probe["format"]["duration"]) <= 2.2
        assert set(codecs(ffprobe(playlist_url))) == {"video", "audio"}

        # Stream info: input tracks measured from the real stream.
        info = live_platform.api("GET", "/v1/vhosts/default/apps/app/streams/mystream").json()["response"]
        assert info["name"] == "mystream" and info["input"]["sourceType"] == "Rtmp"
        video, audio = info["input"]["tracks"]
        assert video["type"] == "Video" and video["video"]["codec"] == "H264"
        assert (video["video"]["width"], video["video"]["height"]) == (640, 360)
        assert 20 <= video["video"]["framerate"] <= 30 and video["video"]["keyFrameInterval"] == 25
        assert int(video["video"]["bitrate"]) > 0
        assert audio["type"] == "Audio" and audio["audio"]["codec"] == "AAC"
        assert (audio["audio"]["samplerate"], audio["audio"]["channel"]) == (48000, 2)
        assert info["outputs"][0]["name"] == "mystream"

        # Stats: real counters that grow.
        stats_path = "/v1/stats/current/vhosts/default/apps/app/streams/mystream"
        first = live_platform.api("GET", stats_path).json()["response"]
        assert first["totalBytesIn"] > 0
        time.sleep(1.5)
        second = live_platform.api("GET", stats_path).json()["response"]
        assert second["totalBytesIn"] > first["totalBytesIn"]
        assert second["totalBytesOut"] > 0  # the players and HLS requests above
        assert second["maxTotalConnections"] >= 1
        app_stats = live_platform.api("GET", "/v1/stats/current/vhosts/default/apps/app").json()["response"]
        assert app_stats["totalBytesIn"] >= second["totalBytesIn"]
        vhost_stats = live_platform.api("GET", "/v1/stats/current/vhosts/default").json()["response"]
        assert vhost_stats["totalBytesIn"] >= app_stats["totalBytesIn"]
        assert set(vhost_stats["connections"]) >= {"hls", "llhls", "webrtc", "rtmp"}
    finally:
        publisher.kill()
        publisher.wait()
    wait_for(lambda: "mystream" not in live_names(live_platform), 15)
    not_found = live_platform.api("GET", "/v1/vhosts/default/apps/app/streams/mystream")
    assert not_found.status_code == 404
    assert not_found.json()["message"] == "[HTTP] Could not find the stream: [default/#default#app/mystream] (404)"


def test_delete_disconnects_the_publisher_and_events_tell_the_websocket(live_platform):
    events: list[dict] = []
    ready = threading.Event()

    async def listen() -> None:
        url = live_platform.url.replace("http", "ws") + "/ws/events/"
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, headers={"Authorization": OME_AUTH}) as socket_:
                ready.set()
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline and len(events) < 3:
                    message = await socket_.receive(timeout=deadline - time.monotonic())
                    if message.type == aiohttp.WSMsgType.TEXT:
                        events.append(json.loads(message.data))

    listener = threading.Thread(target=lambda: asyncio.run(listen()))
    listener.start()
    assert ready.wait(10)
    publisher = publish(live_platform, "deleteme", seconds=60)
    try:
        wait_live(live_platform, "deleteme", publisher)
        response = live_platform.api("DELETE", "/v1/vhosts/default/apps/app/streams/deleteme")
        assert response.status_code == 200
        assert response.json() == {"statusCode": 200, "message": "OK"}
        publisher.wait(timeout=15)  # the engine closed the publisher's connection
        wait_for(lambda: "deleteme" not in live_names(live_platform), 10)
    finally:
        publisher.kill()
        publisher.wait()
    listener.join(timeout=45)
    # First the socket's own session (it is a connected client), then the stream's life.
    assert events[0]["event"] == "connected" and events[0]["sessionId"].startswith("/127.0.0.1:")
    assert [(event["event"], event["stream"]["name"]) for event in events[1:]] == [
        ("started", "deleteme"),
        ("ended", "deleteme"),
    ]
    assert events[1]["stream"]["app"] == "app" and events[1]["stream"]["vhost"] == "default"
    state = live_platform.manage(
        "shell", "-c", "from apps.streams.models import Stream; print(Stream.objects.get(name='deleteme').state)"
    )
    assert state.stdout.strip().endswith("ended")


def test_a_stream_is_listed_and_announced_only_once_its_tracks_are_known(live_platform):
    # A client that lists streams (OME, WCS) or hears `started`, then reads the tracks, finds them.
    def tracks(name: str) -> list[str]:
        info = live_platform.api("GET", f"/v1/vhosts/default/apps/app/streams/{name}").json()["response"]
        return sorted(track["type"] for track in info["input"]["tracks"])

    seen_at_event: list[list[str]] = []
    ready = threading.Event()

    async def listen() -> None:
        url = live_platform.url.replace("http", "ws") + "/ws/events/"
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, headers={"Authorization": OME_AUTH}) as socket_:
                ready.set()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not seen_at_event:
                    message = await socket_.receive(timeout=deadline - time.monotonic())
                    event = json.loads(message.data) if message.type == aiohttp.WSMsgType.TEXT else {}
                    if event.get("event") == "started" and event["stream"]["name"] == "tracked":
                        seen_at_event.append(await asyncio.to_thread(tracks, "tracked"))

    listener = threading.Thread(target=lambda: asyncio.run(listen()))
    listener.start()
    assert ready.wait(10)
    publisher = publish(live_platform, "tracked", seconds=30)
    try:
        ome = wcs = None
        deadline = time.monotonic() + 20
        while (ome is None or wcs is None) and time.monotonic() < deadline:
            if ome is None and "tracked" in live_names(live_platform):
                ome = tracks("tracked")
            if wcs is None:
                found = requests.post(f"{live_platform.url}/rest-api/stream/find_all", json={}, timeout=10)
                listed = [s for s in found.json() if s["name"] == "tracked"] if found.status_code == 200 else []
                if listed:
                    wcs = (listed[0]["hasVideo"], listed[0]["hasAudio"], listed[0]["width"])
        assert ome == ["Audio", "Video"]
        assert wcs == (True, True, 640)
    finally:
        publisher.kill()
        publisher.wait()
    listener.join(timeout=35)
    assert seen_at_event == [["Audio", "Video"]]


def test_the_events_socket_refuses_strangers(live_platform):
    async def connect() -> int:
        url = live_platform.url.replace("http", "ws") + "/ws/events/"
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url, headers={"Authorization": "Basic d3Jvbmc="}) as socket_:
                    message = await socket_.receive(timeout=5)
                    return message.type
            except aiohttp.WSServerHandshakeError as error:
                return error.status

    outcome = asyncio.run(connect())
    assert outcome in (403, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


def test_unknown_apps_and_duplicate_names_are_refused(live_platform):
    stranger = publish(live_platform, "x", seconds=5, app="nosuchapp")
    assert stranger.wait(timeout=20) != 0
    assert live_platform.api("GET", "/v1/vhosts/default/apps/nosuchapp/streams").status_code == 404

    first = publish(live_platform, "taken", seconds=30)
    try:
        wait_live(live_platform, "taken", first)
        second = publish(live_platform, "taken", seconds=5)
        assert second.wait(timeout=20) != 0
        assert first.poll() is None  # the first publisher is untouched
        assert live_names(live_platform).count("taken") == 1
    finally:
        first.kill()
        first.wait()


def test_garbage_connections_do_not_disturb_a_good_stream(live_platform):
    publisher = publish(live_platform, "sturdy", seconds=30)
    try:
        wait_live(live_platform, "sturdy", publisher)
        rng = random.Random(1234)
        sockets = []
        for index in range(20):
            sock = socket.create_connection(("127.0.0.1", live_platform.rtmp_port), timeout=5)
            if index % 3 == 0:
                sock.sendall(b"\x03" + bytes(rng.getrandbits(8) for _ in range(700)))  # truncated handshake
            elif index % 3 == 1:
                sock.sendall(bytes(rng.getrandbits(8) for _ in range(4000)))  # garbage
            else:
                sock.sendall(b"\x03" + bytes(1536) + bytes(rng.getrandbits(8) for _ in range(3000)))  # bad chunks
            sockets.append(sock)
        probe = ffprobe(f"{live_platform.rtmp}/app/sturdy")
        assert codecs(probe)["video"]["codec_name"] == "h264"
        assert publisher.poll() is None
        for sock in sockets:
            sock.close()
    finally:
        publisher.kill()
        publisher.wait()
    assert live_platform.processes["engine"].poll() is None


def test_the_engine_node_heartbeats(live_platform):
    node_id = live_platform.env["STREAMHUB_NODE_ID"]
    script = f"from apps.engine.models import EngineNode as N; n = N.objects.get(node_id={node_id!r}); print(n.is_alive, n.rtmp_port)"
    assert live_platform.manage("shell", "-c", script).stdout.split()[-2:] == ["True", str(live_platform.rtmp_port)]


@pytest.mark.browser
def test_hls_js_plays_the_stream_in_chromium(live_platform, browser_page):
    publisher = publish(live_platform, "browser", seconds=40)
    try:
        wait_live(live_platform, "browser", publisher)
        log_in(browser_page, live_platform)
        browser_page.goto(f"{live_platform.url}/admin/streams/stream/?state=live")
        browser_page.click("#result_list a:text('HLS player')")
        browser_page.wait_for_url("**/play/")
        # hls.js really decodes video: the playhead moves and the frame size is the publisher's.
        browser_page.wait_for_function(
            "() => { const v = document.getElementById('player'); return !!v && v.currentTime > 2 && v.videoWidth > 0; }",
            timeout=30_000,
        )
        size = browser_page.evaluate("() => [player.videoWidth, player.videoHeight]")
        assert size == [640, 360]
        errors = browser_page.evaluate("() => window.playerErrors.filter(e => e.includes('Error'))")
        assert errors == []
        ARTIFACTS.mkdir(exist_ok=True)
        browser_page.screenshot(path=str(ARTIFACTS / "hls-player.png"))
    finally:
        publisher.kill()
        publisher.wait()
