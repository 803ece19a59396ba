"""Master playlists of output profiles (ts:abr.m3u8 and the LL-HLS abr.m3u8): a player that loads the
master and then, at once, every variant it lists never meets a 404, from the first moment the master
answers, even while one rendition is still waiting for its first segment."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import m3u8

from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.hls.filesource import push_packets, read_packets
from media_engine.hls.llhls import LlHlsPackager
from media_engine.hls.master import MasterPlaylists, PlaylistVariant
from media_engine.hls.segmenter import HlsPackager
from media_engine.http.server import MediaHttpServer
from media_engine.registry import StreamKey, StreamRegistry

CONFIG = ApplicationConfig(
    "default", "app", hls_segment_duration=1.0, llhls_part_duration=0.5, llhls_segment_duration=1.0
)
VARIANTS = [PlaylistVariant("cam_720p", 1_200_000), PlaylistVariant("cam_360p", 300_000)]
# The second rendition is live (its tracks are known) but sends media only this much later: longer
# than a variant playlist request waits for a first segment.
LATE_MEDIA_SECONDS = 4.0


async def lookup(vhost: str, app: str, stream: str, file_name: str) -> list[PlaylistVariant] | None:
    return VARIANTS if (stream, file_name) == ("cam", "abr") else None


async def late(stream, packets) -> None:
    await push_packets(stream, [packet for packet in packets if packet.config])
    await asyncio.sleep(LATE_MEDIA_SECONDS)
    await push_packets(stream, [packet for packet in packets if not packet.config])


def test_every_variant_a_master_lists_plays_at_once(http_av_flv: Path) -> None:
    packets = read_packets(http_av_flv)

    async def main() -> dict[str, list[int]]:
        registry = StreamRegistry()
        control = StaticControlPlane([CONFIG])
        hls = HlsPackager.for_control_plane(registry, control)
        llhls = LlHlsPackager.for_control_plane(registry, control)
        hls.attach()
        llhls.attach()
        server = MediaHttpServer(registry, control, hls, "127.0.0.1", 0, llhls=llhls)
        MasterPlaylists(registry, lookup, llhls, hls).add_routes(server)
        await server.start()
        base = f"http://127.0.0.1:{server.port}/app/cam"
        origin = registry.open(StreamKey("default", "app", "cam"), "rtmp")
        first = registry.open(StreamKey("default", "app", "cam_720p"), "rtmp")
        second = registry.open(StreamKey("default", "app", "cam_360p"), "rtmp")
        feeders = [
            asyncio.create_task(push_packets(origin, packets)),
            asyncio.create_task(push_packets(first, packets)),
            asyncio.create_task(late(second, packets)),
        ]
        listed: dict[str, list[int]] = {"ts:abr.m3u8": [], "abr.m3u8": []}
        try:
            async with aiohttp.ClientSession() as http:

                async def status(url: str) -> int:
                    async with http.get(url) as response:
                        await response.read()
                        return response.status

                async def player(master: str) -> None:
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + LATE_MEDIA_SECONDS + 4
                    while loop.time() < deadline:
                        async with http.get(f"{base}/{master}") as response:
                            text = await response.text()
                            if response.status != 200:
                                assert response.status == 404 and not listed[master], "the master went away"
                                await asyncio.sleep(0.05)
                                continue
                        playlist = m3u8.loads(text, uri=f"{base}/{master}")
                        uris = [variant.absolute_uri for variant in playlist.playlists]
                        answers = await asyncio.gather(*(status(uri) for uri in uris))
                        assert answers == [200] * len(uris), f"{master} listed {uris}: {answers}"
                        listed[master].append(len(uris))

                await asyncio.gather(player("ts:abr.m3u8"), player("abr.m3u8"))
        finally:
            for feeder in feeders:
                feeder.cancel()
            await asyncio.gather(*feeders, return_exceptions=True)
            await server.stop()
            await hls.close()
            await llhls.close()
        return listed

    listed = asyncio.run(main())
    for master, counts in listed.items():
        # It answered early (the first rendition only), and lists both once the second one plays.
        assert counts and counts[0] == 1 and counts[-1] == 2, (master, counts)
