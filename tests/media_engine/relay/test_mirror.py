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
from media_engine.node import EngineNode, NodeAddresses
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

    def __init__(self, linger: float) -> None:
        self.linger = linger
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
            _config(), addresses, WebRtcSettings(ice=LOOPBACK_ICE), locate=self.locate, mirror_linger=self.linger
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
async def cluster(linger: float = 10.0) -> AsyncIterator[Cluster]:
    nodes = Cluster(linger)
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
        async with cluster(linger=2.0) as nodes:
            nodes.publish()
            await nodes.live_on_a()

            streams = await ffprobe_streams(nodes.b_url())
            assert streams["video"]["codec_name"] == "h264" and streams["video"]["width"] == 320
            assert streams["audio"]["codec_name"] == "aac" and streams["audio"]["sample_rate"] == "48000"
            mirror = nodes.b.registry.get(KEY)
            assert mirror is not None and mirror.origin == "node-a"

            players = [await ffmpeg_play(nodes.b_url(), 4) for _ in range(5)]
            await wait_until(lambda: mirror.counters.connections.get("rtmp") == 5, 20)
            results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in players)), 60)
            assert [p.returncode for p in players] == [0] * 5, [err.decode() for _, err in results]

            # One pull for the ffprobe and all five players; A counts it as one RTMP connection.
            assert nodes.a_connections == 1
            origin = nodes.a.registry.get(KEY)
            assert origin.counters.max_total_connections == 1 and origin.counters.connections["rtmp"] == 1
            assert mirror.counters.max_total_connections == 5 and mirror.counters.total_bytes_in > 100_000
            info = nodes.b.remote.mirrors()
            assert [(m.key, m.origin, m.state) for m in info] == [(KEY, "node-a", "playing")]
            assert info[0].bytes_in >= mirror.counters.total_bytes_in
            # The control plane of B never heard of the mirror; listings of B show it with its origin.
            assert nodes.b_started == [] and [s.origin for s in nodes.b.live_streams()] == ["node-a"]

            # The last player left: the mirror stays `linger` seconds, then leaves A.
            await wait_until(lambda: mirror.counters.connections.get("rtmp") == 0, 10)
            left = time.monotonic()
            await asyncio.sleep(1.0)
            assert nodes.b.registry.get(KEY) is mirror
            await wait_until(lambda: nodes.b.registry.get(KEY) is None, 10)
            assert 1.9 <= time.monotonic() - left <= 5.0
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


def test_an_unknown_key_is_refused_at_once():
    async def main() -> None:
        async with cluster() as nodes:
            nodes.publish()
            await nodes.live_on_a()
            for name in ("nothing", "nothing-again"):
                started = time.monotonic()
                try:
                    await RtmpPlayer(nodes.b_url(name), print).start()
                    raise AssertionError("played an unknown stream")
                except PlayError as error:
                    assert "StreamNotFound" in str(error)
                assert time.monotonic() - started < 1.0
            async with aiohttp.ClientSession() as http:
                for path in ("nothing/ts:playlist.m3u8", "nothing/llhls.m3u8"):
                    started = time.monotonic()
                    async with http.get(nodes.http_b(path)) as response:
                        assert response.status == 404
                    assert time.monotonic() - started < 1.0
            assert StreamKey("default", "app", "nothing") in nodes.located
            assert nodes.a_connections == 0 and nodes.b.registry.get(StreamKey("default", "app", "nothing")) is None

            # A holder that does not have the stream (it ended meanwhile) answers at once too.
            async def stale(key: StreamKey) -> RemoteSource:
                return RemoteSource(f"rtmp://127.0.0.1:{nodes.a.rtmp.port}/app/{key.name}", "node-a")

            nodes.b.remote.locate = stale
            started = time.monotonic()
            try:
                await RtmpPlayer(nodes.b_url("gone"), print).start()
                raise AssertionError("played an unknown stream")
            except PlayError:
                pass
            assert time.monotonic() - started < 1.0

    asyncio.run(main())


async def _ffprobe_bytes(data: bytes, suffix: str, folder: Path) -> dict:
    path = folder / f"probe{suffix}"
    path.write_bytes(data)
    return await ffprobe_streams(str(path))


def test_hls_and_llhls_of_b_package_the_mirror(tmp_path):
    async def main() -> None:
        async with cluster() as nodes:
            nodes.publish()
            await nodes.live_on_a()
            async with aiohttp.ClientSession() as http:
                async with http.get(nodes.http_b("source/ts:playlist.m3u8")) as response:
                    assert response.status == 200, await response.text()
                    playlist = await response.text()
                segment = next(line for line in playlist.splitlines() if line.endswith(".ts"))
                async with http.get(nodes.http_b(f"source/{segment}")) as response:
                    assert response.status == 200
                    streams = await _ffprobe_bytes(await response.read(), ".ts", tmp_path)
                assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"

                async with http.get(nodes.http_b("source/llhls.m3u8")) as response:
                    assert response.status == 200, await response.text()
                    master = await response.text()
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

    asyncio.run(main())


def test_whep_of_b_plays_the_mirror():
    async def main() -> None:
        async with cluster() as nodes:
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

    asyncio.run(main())
