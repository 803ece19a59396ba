"""Mirrors between two engine nodes in one process: A (the origin) holds a stream published by ffmpeg,
B has a `locate` that names A for the keys A holds. Viewers of B (ffprobe/ffmpeg over RTMP, HLS, LL-HLS,
aiortc over WHEP) play A's stream through one RTMP pull of B from A."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiortc import RTCSessionDescription

from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.node import EngineNode, HlsSettings, NodeAddresses
from media_engine.registry import StreamKey
from media_engine.relay.mirror import RemoteSource
from media_engine.rtmp.client import PlayError, RtmpPlayer
from media_engine.webrtc.service import WebRtcSettings
from tests.media_engine.webrtc.conftest import LOOPBACK_ICE, ffmpeg_publish, ffprobe_streams, wait_until
from tests.media_engine.webrtc.test_signalling import SDP, browser_like_offer

KEY = StreamKey("default", "app", "source")


def _config() -> StaticControlPlane:
    return StaticControlPlane(
        [ApplicationConfig("default", "app", hls_segment_duration=1.0, hls_segment_count=5, llhls_segment_duration=1.0)]
    )


class Cluster:
    """Node A (origin) and node B (mirrors A's streams); counts the RTMP connections A accepts."""

    def __init__(self, linger: float, hls_idle: float) -> None:
        self.linger = linger
        self.hls_idle = hls_idle
        self.a: EngineNode
        self.b: EngineNode
        self.a_connections = 0
        self.located: list[StreamKey] = []
        self.b_started: list[StreamKey] = []
        self.publisher = None

    async def locate(self, key: StreamKey) -> RemoteSource | None:
        self.located.append(key)
        if self.a.registry.get(key) is None:
            return None
        return RemoteSource(
            f"rtmp://127.0.0.1:{self.a.rtmp.port}/{key.app}/{key.name}?shjob=secret",
            "node-a",
            f"http://127.0.0.1:{self.a.http.port}",
        )

    async def start(self) -> None:
        addresses = NodeAddresses("127.0.0.1", 0, "127.0.0.1", 0)
        self.a = EngineNode(_config(), addresses, WebRtcSettings(ice=LOOPBACK_ICE))
        self.b = EngineNode(
            _config(),
            addresses,
            WebRtcSettings(ice=LOOPBACK_ICE),
            hls=HlsSettings(idle_timeout=self.hls_idle),
            locate=self.locate,
            mirror_linger=self.linger,
        )
        new_session = self.a.rtmp._new_session

        def counted():
            self.a_connections += 1
            return new_session()

        self.a.rtmp._new_session = counted
        self.b.registry.on_started(lambda stream: self.b_started.append(stream.key))  # as the control plane
        await self.a.start()
        await self.b.start()

    def publish(self, seconds: float = 60) -> None:
        self.publisher = ffmpeg_publish(f"rtmp://127.0.0.1:{self.a.rtmp.port}/app/source", seconds)

    async def live_on_a(self) -> None:
        await wait_until(lambda: (s := self.a.registry.get(KEY)) is not None and s.ready and s.gop, 20)
        self.a_connections = 0  # from here on: the connections of players, not of the publisher

    def b_url(self, name: str = "source") -> str:
        return f"rtmp://127.0.0.1:{self.b.rtmp.port}/app/{name}"

    def http_b(self, path: str) -> str:
        return f"http://127.0.0.1:{self.b.http.port}/app/{path}"

    async def stop(self) -> None:
        if self.publisher is not None:
            self.publisher.kill()
            self.publisher.wait()
        await self.b.stop()
        await self.a.stop()


@contextlib.asynccontextmanager
async def cluster(linger: float = 10.0, hls_idle: float = 30.0) -> AsyncIterator[Cluster]:
    nodes = Cluster(linger, hls_idle)
    await nodes.start()
    try:
        yield nodes
    finally:
        await nodes.stop()


async def ffmpeg_play(url: str, seconds: float) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-v", "error", "-rw_timeout", "10000000", "-i", url, "-t", str(seconds),
        "-c", "copy", "-f", "null", "-",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def test_rtmp_players_of_b_share_one_pull_from_a_and_the_mirror_lingers_then_ends():
    async def main() -> None:
        async with cluster(linger=3.0) as nodes:
            nodes.publish()
            await nodes.live_on_a()

            players = await asyncio.gather(*(ffmpeg_play(nodes.b_url(), 8) for _ in range(5)))
            await wait_until(lambda: (m := nodes.b.registry.get(KEY)) and m.counters.connections.get("rtmp") == 5, 30)
            mirror = nodes.b.registry.get(KEY)
            assert mirror.origin == "node-a"
            streams = await ffprobe_streams(nodes.b_url())  # a sixth viewer, while the five play
            assert streams["video"]["codec_name"] == "h264" and streams["video"]["width"] == 320
            assert streams["audio"]["codec_name"] == "aac" and streams["audio"]["sample_rate"] == "48000"
            results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in players)), 60)
            assert [p.returncode for p in players] == [0] * 5, [err.decode() for _, err in results]

            # One pull for all six players; A counts it as one RTMP connection.
            assert nodes.a_connections == 1 and nodes.b.registry.get(KEY) is mirror
            origin = nodes.a.registry.get(KEY)
            assert origin.counters.max_total_connections == 1 and origin.counters.connections["rtmp"] == 1
            assert mirror.counters.max_total_connections >= 5 and mirror.counters.total_bytes_in > 100_000
            info = nodes.b.remote.mirrors()
            assert [(m.key, m.origin, m.state) for m in info] == [(KEY, "node-a", "playing")]
            assert info[0].bytes_in >= mirror.counters.total_bytes_in
            # The control plane of B never heard of the mirror; listings of B show it with its origin.
            assert nodes.b_started == [] and [s.origin for s in nodes.b.live_streams()] == ["node-a"]

            # The last player left: the mirror stays `linger` seconds, then leaves A.
            await wait_until(lambda: mirror.counters.connections.get("rtmp") == 0, 10)
            left = time.monotonic()
            await asyncio.sleep(1.5)
            assert nodes.b.registry.get(KEY) is mirror
            await wait_until(lambda: nodes.b.registry.get(KEY) is None, 10)
            assert 2.9 <= time.monotonic() - left <= 9.0
            await wait_until(lambda: origin.counters.connections["rtmp"] == 0, 5)
            assert nodes.b.remote.mirrors() == [] and mirror.ended

            # A new player starts a new mirror.
            streams = await ffprobe_streams(nodes.b_url())
            assert {"video", "audio"} <= streams.keys() and nodes.a_connections == 2

    asyncio.run(main())


def test_the_end_of_the_publish_on_a_ends_the_mirror_and_its_players():
    async def main() -> None:
        async with cluster(linger=30.0) as nodes:
            nodes.publish()
            await nodes.live_on_a()
            player = await ffmpeg_play(nodes.b_url(), 60)
            await wait_until(lambda: (m := nodes.b.registry.get(KEY)) is not None and m.subscriber_count == 1, 20)
            mirror = nodes.b.registry.get(KEY)
            # While mirrored, the key cannot be published on B.
            duplicate = ffmpeg_publish(nodes.b_url(), 5)
            assert await asyncio.to_thread(duplicate.wait, 20) != 0
            assert nodes.b.registry.get(KEY) is mirror

            nodes.publisher.terminate()
            await wait_until(lambda: nodes.b.registry.get(KEY) is None, 10)
            assert mirror.ended
            await asyncio.wait_for(player.communicate(), 10)  # the player was hung up on
            assert nodes.b_started == []

    asyncio.run(main())


def test_a_stream_published_here_while_locate_looks_is_played_instead_of_a_mirror():
    """As on an edge whose `locate` started a CDN rendition's transcode with the edge as its output."""

    async def main() -> None:
        async with cluster() as nodes:

            async def locate_until_published_here(key: StreamKey) -> None:
                await wait_until(lambda: nodes.b.registry.get(key) is not None, 40)
                return None  # no other node holds it

            nodes.b.remote.locate = locate_until_published_here
            nodes.b.remote.connect_timeout = 60.0  # the publisher may take a while on a loaded machine
            looking = asyncio.ensure_future(nodes.b.remote.ensure(KEY))
            publisher = ffmpeg_publish(nodes.b_url(), 30)
            try:
                stream = await asyncio.wait_for(looking, 60)
                assert stream is not None and stream is nodes.b.registry.get(KEY)
                assert stream.origin is None, "the published stream, not a mirror"
                assert nodes.b.remote.mirrors() == [] and nodes.a_connections == 0
            finally:
                publisher.kill()
                publisher.wait()

    asyncio.run(main())


async def _refusal_time(url: str) -> float:
    started = time.monotonic()
    try:
        await RtmpPlayer(url, print).start()
    except PlayError as error:
        assert "StreamNotFound" in str(error)
    else:
        raise AssertionError("played an unknown stream")
    return time.monotonic() - started


def test_an_unknown_key_is_refused_at_once():
    """At once: in well under a second (as an unknown key on A itself, measured beside it: the machine
    may be loaded), not after the mirror's connect timeout (5 s)."""

    async def main() -> None:
        async with cluster() as nodes:
            nodes.publish()
            await nodes.live_on_a()
            reference = await _refusal_time(f"rtmp://127.0.0.1:{nodes.a.rtmp.port}/app/nothing")
            elapsed = [await _refusal_time(nodes.b_url(name)) for name in ("nothing", "nothing-again")]
            async with aiohttp.ClientSession() as http:
                for path in ("nothing/ts:playlist.m3u8", "nothing/llhls.m3u8"):
                    started = time.monotonic()
                    async with http.get(nodes.http_b(path)) as response:
                        assert response.status == 404
                    elapsed.append(time.monotonic() - started)
            assert StreamKey("default", "app", "nothing") in nodes.located
            assert nodes.a_connections == 1 and nodes.b.registry.get(StreamKey("default", "app", "nothing")) is None

            # A holder that does not have the stream (it ended meanwhile) answers at once too.
            async def stale(key: StreamKey) -> RemoteSource:
                return RemoteSource(f"rtmp://127.0.0.1:{nodes.a.rtmp.port}/app/{key.name}", "node-a")

            nodes.b.remote.locate = stale
            elapsed.append(await _refusal_time(nodes.b_url("gone")))
            print(f"refusals on B: {[round(t, 3) for t in elapsed]} s; the same on A: {reference:.3f} s")
            assert all(t < 1.0 + reference for t in elapsed), (elapsed, reference)

    asyncio.run(main())


async def _first_playlist(http: aiohttp.ClientSession, url: str) -> str:
    """The first playlist, asked again after a 404 as players do (hls.js retries a manifest load):
    under load the first segment of a stream just mirrored may take longer than the server waits."""
    deadline = time.monotonic() + 20
    while True:
        async with http.get(url) as response:
            if response.status == 200:
                return await response.text()
            assert response.status == 404 and time.monotonic() < deadline, (response.status, await response.text())
        await asyncio.sleep(0.5)


async def _ffprobe_bytes(data: bytes, suffix: str, folder: Path) -> dict:
    path = folder / f"probe{suffix}"
    path.write_bytes(data)
    return await ffprobe_streams(str(path))


def test_hls_and_llhls_of_b_package_the_mirror(tmp_path):
    async def main() -> None:
        async with cluster(linger=1.0, hls_idle=2.0) as nodes:
            nodes.publish()
            await nodes.live_on_a()
            async with aiohttp.ClientSession() as http:
                playlist = await _first_playlist(http, nodes.http_b("source/ts:playlist.m3u8"))
                segment = next(line for line in playlist.splitlines() if line.endswith(".ts"))
                async with http.get(nodes.http_b(f"source/{segment}")) as response:
                    assert response.status == 200
                    streams = await _ffprobe_bytes(await response.read(), ".ts", tmp_path)
                assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"

                master = await _first_playlist(http, nodes.http_b("source/llhls.m3u8"))
                chunklist = next(line for line in master.splitlines() if line.startswith("chunklist"))
                async with http.get(nodes.http_b(f"source/{chunklist}")) as response:
                    assert response.status == 200
                    media = await response.text()
                init = next(line.split('URI="')[1].split('"')[0] for line in media.splitlines() if "EXT-X-MAP" in line)
                part = next(line for line in media.splitlines() if line.endswith(".m4s") and not line.startswith("#"))
                async with http.get(nodes.http_b(f"source/{init}")) as response:
                    data = await response.read()
                async with http.get(nodes.http_b(f"source/{part}")) as response:
                    assert response.status == 200
                    data += await response.read()
                streams = await _ffprobe_bytes(data, ".mp4", tmp_path)
                assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
            mirror = nodes.b.registry.get(KEY)
            assert mirror is not None and mirror.origin == "node-a" and mirror.counters.total_bytes_out > 0
            assert nodes.a_connections == 1 and nodes.b_started == []
            # No more requests: the packagers stop after their idle time, then the mirror after its linger.
            stopped = time.monotonic()
            await wait_until(lambda: nodes.b.registry.get(KEY) is None, 15)
            assert 2.0 <= time.monotonic() - stopped and mirror.ended
            await wait_until(lambda: nodes.a.registry.get(KEY).counters.connections["rtmp"] == 0, 5)

    asyncio.run(main())


def test_whep_of_b_plays_the_mirror():
    async def main() -> None:
        async with cluster(linger=1.0) as nodes:
            nodes.publish()
            await nodes.live_on_a()
            pc, offer = await browser_like_offer()
            frames: dict[str, object] = {}

            @pc.on("track")
            def on_track(track) -> None:
                async def read() -> None:
                    frames[track.kind] = await track.recv()

                asyncio.ensure_future(read())

            try:
                async with aiohttp.ClientSession() as http:
                    async with http.post(nodes.http_b("source?direction=whep"), data=offer, headers=SDP) as response:
                        assert response.status == 201, await response.text()
                        answer = await response.text()
                await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
                await wait_until(lambda: {"video", "audio"} <= frames.keys(), 30)
                assert frames["video"].width == 320 and frames["video"].height == 240
                mirror = nodes.b.registry.get(KEY)
                assert mirror is not None and mirror.origin == "node-a" and mirror.reader_count >= 1
                assert nodes.a_connections == 1
            finally:
                await pc.close()
            # The viewer left: the mirror ends after its linger.
            await wait_until(lambda: nodes.b.registry.get(KEY) is None, 10)
            assert mirror.ended and nodes.b_started == []

    asyncio.run(main())
