"""The media HTTP server: a live stream fed in real time, read by ffprobe over HLS."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.hls.filesource import push_packets, read_packets
from media_engine.hls.segmenter import HlsPackager
from media_engine.http.server import (
    MAX_AGENTS_PER_ADDRESS,
    MAX_REPORTED_VIEWERS,
    MAX_USER_AGENT,
    MediaHttpServer,
    ViewerTracker,
)
from media_engine.registry import LiveStream, StreamKey, StreamRegistry


async def ffprobe_url(url: str) -> dict:
    process = await asyncio.create_subprocess_exec(
        "ffprobe",
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_streams",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    return json.loads(stdout)


def test_live_hls_over_http(http_av_flv: Path) -> None:
    packets = read_packets(http_av_flv)

    async def main() -> None:
        registry = StreamRegistry()
        control = StaticControlPlane([ApplicationConfig("default", "app", hls_segment_duration=2.0)])
        packager = HlsPackager.for_control_plane(registry, control)
        packager.attach()
        server = MediaHttpServer(registry, control, packager, "127.0.0.1", 0)
        await server.start()
        assert server.port != 0
        base = f"http://127.0.0.1:{server.port}"
        stream = registry.open(StreamKey("default", "app", "stream"), "rtmp", "127.0.0.1")
        feeder = asyncio.create_task(push_packets(stream, packets, realtime=True))
        try:
            async with aiohttp.ClientSession() as http:
                # Live, no segment yet: the first request waits for the first segment (~2 s).
                async with http.get(f"{base}/app/stream/ts:playlist.m3u8") as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"] == "application/vnd.apple.mpegurl"
                    assert response.headers["Access-Control-Allow-Origin"] == "*"
                    playlist = await response.text()
                assert "#EXT-X-TARGETDURATION:2" in playlist and "#EXT-X-ENDLIST" not in playlist
                segment_name = next(line for line in playlist.splitlines() if line.endswith(".ts"))

                info = await ffprobe_url(f"{base}/app/stream/ts:playlist.m3u8")
                streams = {s["codec_type"]: s for s in info["streams"]}
                assert streams["video"]["codec_name"] == "h264"
                assert (streams["video"]["width"], streams["video"]["height"]) == (640, 360)
                assert streams["audio"]["codec_name"] == "aac"

                async with http.get(f"{base}/app/stream/playlist.m3u8") as response:  # alias
                    assert response.status == 200
                async with http.get(f"{base}/app/stream/{segment_name}") as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"] == "video/mp2t"
                    assert response.headers["Access-Control-Allow-Origin"] == "*"
                    body = await response.read()
                    assert len(body) % 188 == 0 and body[0] == 0x47
                for path in (
                    "/app/nostream/ts:playlist.m3u8",
                    "/otherapp/stream/ts:playlist.m3u8",
                    "/app/stream/seg_0_999.ts",
                    "/nothing",
                ):
                    async with http.get(base + path) as response:
                        assert response.status == 404, path
                        assert response.headers["Access-Control-Allow-Origin"] == "*"
                headers = {"Origin": "https://player.example", "Access-Control-Request-Method": "GET"}
                async with http.options(f"{base}/app/stream/ts:playlist.m3u8", headers=headers) as response:
                    assert response.status == 204
                    assert response.headers["Access-Control-Allow-Origin"] == "*"
                    assert "GET" in response.headers["Access-Control-Allow-Methods"]

                assert stream.counters.total_bytes_out >= len(body) + len(playlist)
                # Two viewers from 127.0.0.1: this client and ffprobe (another User-Agent).
                assert stream.counters.connections["hls"] == 2 and server.viewers.count(stream) == 2
                sessions = server.viewers.sessions(stream)
                assert [(v.address, v.protocol) for v in sessions] == [("127.0.0.1", "hls")] * 2
                assert {v.user_agent.split("/")[0] for v in sessions} == {"Python", "Lavf"}

                # The publisher leaves: the playlist ends, and stays readable for a while.
                feeder.cancel()
                registry.close(stream)
                for _ in range(100):
                    if packager.get(stream.key).ended:
                        break
                    await asyncio.sleep(0.01)
                async with http.get(f"{base}/app/stream/ts:playlist.m3u8") as response:
                    assert response.status == 200
                    assert "#EXT-X-ENDLIST" in await response.text()
        finally:
            feeder.cancel()
            await server.stop()
            await packager.close()
        assert stream.counters.connections["hls"] == 0

    asyncio.run(main())


def test_viewer_tracker_window() -> None:
    now = [1000.0]
    tracker = ViewerTracker(window=30, clock=lambda: now[0])
    stream = LiveStream(StreamKey("default", "app", "s"), "rtmp")
    tracker.seen(stream, "10.0.0.1")
    tracker.seen(stream, "10.0.0.1")
    now[0] += 20
    tracker.seen(stream, "10.0.0.2")
    assert stream.counters.connections["hls"] == 2
    now[0] += 15  # the first one has been silent for 35 s
    tracker.sweep()
    assert stream.counters.connections["hls"] == 1 and tracker.count(stream) == 1
    stream.end()
    tracker.sweep()
    assert stream.counters.connections["hls"] == 0 and tracker.count(stream) == 0


def test_viewer_sessions_are_clients_with_their_user_agent_and_last_port() -> None:
    now, wall = [1000.0], [1.7e9]
    tracker = ViewerTracker(window=30, clock=lambda: now[0], wall_clock=lambda: wall[0])
    stream = LiveStream(StreamKey("default", "app", "s"), "rtmp")
    tracker.seen(stream, "10.0.0.1", "hls", 50000, "hls.js")
    now[0] += 5
    wall[0] += 5
    tracker.seen(stream, "10.0.0.1", "hls", 50002, "hls.js")  # the same player, a new connection
    tracker.seen(stream, "10.0.0.1", "hls", 50003, "VLC/3.0")  # another player behind the same address
    tracker.seen(stream, "10.0.0.2", "llhls", 40000, "AppleCoreMedia")
    assert stream.counters.connections == {"hls": 2, "llhls": 1}
    assert [viewer.as_dict() for viewer in tracker.sessions(stream)] == [
        {"number": 1, "protocol": "hls", "address": "10.0.0.1", "port": 50002, "user_agent": "hls.js",
         "first_seen": 1.7e9, "last_seen": 1.7e9 + 5},
        {"number": 2, "protocol": "hls", "address": "10.0.0.1", "port": 50003, "user_agent": "VLC/3.0",
         "first_seen": 1.7e9 + 5, "last_seen": 1.7e9 + 5},
        {"number": 3, "protocol": "llhls", "address": "10.0.0.2", "port": 40000, "user_agent": "AppleCoreMedia",
         "first_seen": 1.7e9 + 5, "last_seen": 1.7e9 + 5},
    ]  # fmt: skip
    now[0] += 27  # the first request of hls.js is 32 s old, its last 27 s
    tracker.sweep()
    assert [viewer.number for viewer in tracker.sessions(stream)] == [1, 2, 3]
    now[0] += 10  # all silent for 37 s: gone
    tracker.sweep()
    assert tracker.sessions(stream) == [] and stream.counters.connections == {"hls": 0, "llhls": 0}
    tracker.seen(stream, "10.0.0.1", "hls", 50009, "hls.js")  # back: a new session
    assert [(viewer.number, viewer.user_agent) for viewer in tracker.sessions(stream)] == [(4, "hls.js")]
    assert stream.counters.connections == {"hls": 1, "llhls": 0}


def test_one_address_cannot_grow_the_viewers_by_varying_its_user_agent() -> None:
    tracker = ViewerTracker(window=30)
    stream = LiveStream(StreamKey("default", "app", "s"), "rtmp")
    for n in range(MAX_AGENTS_PER_ADDRESS + 500):
        tracker.seen(stream, "10.0.0.1", "hls", 50000, f"agent-{n}-" + "x" * 1000)
    sessions = tracker.sessions(stream)
    # One session per agent up to the cap, then one shared session (no agent) for the rest.
    assert len(sessions) == MAX_AGENTS_PER_ADDRESS + 1 == stream.counters.connections["hls"]
    assert sessions[-1].user_agent == "" and len(sessions[0].user_agent) == MAX_USER_AGENT
    tracker.seen(stream, "10.0.0.2", "hls", 50000, "agent-0")  # other addresses still count
    assert tracker.count(stream) == MAX_AGENTS_PER_ADDRESS + 2


def test_a_report_lists_at_most_the_oldest_thousand_viewers_but_counts_all() -> None:
    tracker = ViewerTracker(window=30)
    stream = LiveStream(StreamKey("default", "app", "s"), "rtmp")
    for n in range(MAX_REPORTED_VIEWERS + 200):
        tracker.seen(stream, f"10.0.{n // 256}.{n % 256}", "hls", 50000, "hls.js")
    sessions = tracker.sessions(stream)
    assert len(sessions) == MAX_REPORTED_VIEWERS and stream.counters.connections["hls"] == MAX_REPORTED_VIEWERS + 200
    assert [viewer.number for viewer in sessions] == list(range(1, MAX_REPORTED_VIEWERS + 1))


def test_routes_added_by_other_modules() -> None:
    async def main() -> None:
        registry = StreamRegistry()
        control = StaticControlPlane([ApplicationConfig("default", "app")])
        packager = HlsPackager.for_control_plane(registry, control)
        server = MediaHttpServer(registry, control, packager, "127.0.0.1", 0)

        async def thumbnail(request: web.Request) -> web.Response:
            target = await server.resolve_stream(request)
            if target is None or target.stream is None:
                raise web.HTTPNotFound()
            return web.Response(body=b"jpeg", content_type="image/jpeg")

        async def whip_options(request: web.Request) -> web.Response:
            return web.Response(status=204, headers={"Link": "<stun:stun.example>; rel=ice-server"})

        server.add_route("GET", "/{app}/{stream}/thumb.jpg", thumbnail)
        server.add_route("OPTIONS", "/{app}/{stream}", whip_options)
        await server.start()
        registry.open(StreamKey("default", "app", "live"), "rtmp")
        base = f"http://127.0.0.1:{server.port}"
        try:
            with pytest.raises(RuntimeError):
                server.add_route("GET", "/late", thumbnail)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/app/live/thumb.jpg") as response:
                    assert response.status == 200 and await response.read() == b"jpeg"
                    assert response.headers["Access-Control-Allow-Origin"] == "*"
                async with http.get(f"{base}/app/gone/thumb.jpg") as response:
                    assert response.status == 404
                    assert response.headers["Access-Control-Allow-Origin"] == "*"
                async with http.options(f"{base}/app/live") as response:
                    assert response.status == 204 and "ice-server" in response.headers["Link"]
                    assert response.headers["Access-Control-Allow-Origin"] == "*"
                async with http.options(f"{base}/app/live/thumb.jpg") as response:  # generic preflight
                    assert response.status == 204 and "Link" not in response.headers
                # a live stream not packaged (no packager attached): playlist 404 after the wait
                async with http.get(f"{base}/app/live/ts:playlist.m3u8") as response:
                    assert response.status == 404
        finally:
            await server.stop()

    asyncio.run(main())
