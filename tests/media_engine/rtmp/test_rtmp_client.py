"""The RTMP play client against two real servers: this engine's RTMP server and nginx-rtmp, each fed
by an ffmpeg publisher; the packets it hands over are the ones the publish path makes."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from media_engine.packets import MediaPacket, TrackKind
from media_engine.rtmp import flv
from media_engine.rtmp.client import PlayError, RtmpPlayer, split_url
from tests.media_engine.jobs.conftest import Nginx, nginx, publish_command  # noqa: F401 (fixture)
from tests.media_engine.rtmp.rtmp_client import RtmpTestClient
from tests.media_engine.webrtc.conftest import ffmpeg_publish, start_node, wait_until


def test_split_url_keeps_the_query_with_the_stream_name():
    host, port, app, name, tc_url = split_url("rtmp://10.0.0.1/app/cam?shjob=v1.1.x")
    assert (host, port, app, name, tc_url) == ("10.0.0.1", 1935, "app", "cam?shjob=v1.1.x", "rtmp://10.0.0.1:1935/app")
    with pytest.raises(ValueError):
        split_url("rtmp://10.0.0.1/app")


async def _play_for(url: str, seconds: float) -> tuple[RtmpPlayer, list[MediaPacket]]:
    packets: list[MediaPacket] = []
    player = RtmpPlayer(url, packets.append, connect_timeout=10)
    await player.start()
    task = asyncio.create_task(player.run())
    await wait_until(lambda: sum(1 for p in packets if p.kind is TrackKind.VIDEO and p.keyframe) >= 2, seconds)
    player.close()
    await asyncio.wait_for(task, 5)
    return player, packets


def _check_packets(packets: list[MediaPacket]) -> None:
    configs = {(p.kind, p.codec) for p in packets if p.config}
    assert (TrackKind.VIDEO, "h264") in configs and (TrackKind.AUDIO, "aac") in configs, configs
    metadata = [p for p in packets if p.kind is TrackKind.DATA and p.config]
    assert metadata and flv.announced_tracks(metadata[0]) == (True, True)
    video = [p for p in packets if p.kind is TrackKind.VIDEO and not p.config]
    audio = [p for p in packets if p.kind is TrackKind.AUDIO and not p.config]
    assert video[0].keyframe and len(audio) > 10
    dts = [p.dts for p in video]
    assert dts == sorted(dts) and dts[-1] - dts[0] >= 900  # two keyframes of a -g 25 stream at 25 fps


def test_it_plays_from_the_engine():
    async def main() -> None:
        node = await start_node()
        publisher = ffmpeg_publish(f"rtmp://127.0.0.1:{node.rtmp.port}/app/source")
        try:
            await wait_until(lambda: any(s.key.name == "source" for s in node.live_streams()), 20)
            stream = node.live_streams()[0]
            player, packets = await _play_for(f"rtmp://127.0.0.1:{node.rtmp.port}/app/source", 20)
            _check_packets(packets)
            assert player.bytes_in > sum(len(p.payload) for p in packets)
            await wait_until(lambda: stream.counters.connections.get("rtmp") == 0, 5)  # left cleanly

            with pytest.raises(PlayError, match="StreamNotFound"):
                await RtmpPlayer(f"rtmp://127.0.0.1:{node.rtmp.port}/app/nothing", print).start()
            with pytest.raises(PlayError, match="connect refused"):
                await RtmpPlayer(f"rtmp://127.0.0.1:{node.rtmp.port}/nope/source", print).start()
        finally:
            publisher.kill()
            publisher.wait()
            await node.stop()

    asyncio.run(main())


def test_run_returns_when_the_publisher_stops():
    async def main() -> None:
        node = await start_node()
        publisher = ffmpeg_publish(f"rtmp://127.0.0.1:{node.rtmp.port}/app/source", seconds=30)
        try:
            await wait_until(lambda: any(s.key.name == "source" for s in node.live_streams()), 20)
            packets: list[MediaPacket] = []
            player = RtmpPlayer(f"rtmp://127.0.0.1:{node.rtmp.port}/app/source", packets.append)
            await player.start()
            task = asyncio.create_task(player.run())
            await wait_until(lambda: len(packets) > 20, 10)
            publisher.terminate()
            await asyncio.wait_for(task, 10)
            assert player.ended_by in ("NetStream.Play.UnpublishNotify", "eof"), player.ended_by
        finally:
            publisher.kill()
            publisher.wait()
            await node.stop()

    asyncio.run(main())


def test_it_plays_from_nginx_rtmp(nginx):  # noqa: F811
    server: Nginx = nginx()
    publisher = subprocess.Popen(publish_command(server.url("source"), None), stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.5)  # nginx-rtmp starts a stream on the first publish; a player before it would wait

        async def main() -> None:
            player, packets = await _play_for(server.url("source"), 20)
            _check_packets(packets)

        asyncio.run(main())
    finally:
        publisher.kill()
        publisher.wait()


def test_run_ends_when_the_server_sends_nothing_for_the_idle_timeout():
    async def main() -> None:
        node = await start_node()
        publisher = await RtmpTestClient.open(node.rtmp.port)  # publishes, then stays silent
        try:
            await publisher.start_publishing("quiet")
            player = RtmpPlayer(f"rtmp://127.0.0.1:{node.rtmp.port}/app/quiet", print, idle_timeout=1.0)
            await player.start()
            started = time.monotonic()
            await asyncio.wait_for(player.run(), 10)
            assert player.ended_by == "timeout" and 0.9 <= time.monotonic() - started < 5
        finally:
            publisher.close()
            await node.stop()

    asyncio.run(main())
