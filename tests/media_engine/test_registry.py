"""The live stream registry: fan-out to queued readers and inline sinks, slow readers dropped."""

import asyncio

import pytest

from media_engine.packets import MediaPacket, TrackKind
from media_engine.registry import StreamAlreadyLive, StreamKey, StreamRegistry

KEY = StreamKey("default", "app", "cam")


def video(dts: int, keyframe: bool = False) -> MediaPacket:
    return MediaPacket(TrackKind.VIDEO, "h264", dts, dts, b"x" * 10, keyframe=keyframe)


def test_a_name_is_published_once():
    registry = StreamRegistry()
    registry.open(KEY, "rtmp")
    with pytest.raises(StreamAlreadyLive):
        registry.open(KEY, "rtmp")


def test_new_readers_start_with_the_config_and_the_last_gop():
    async def scenario():
        registry = StreamRegistry()
        stream = registry.open(KEY, "rtmp")
        config = MediaPacket(TrackKind.VIDEO, "h264", 0, 0, b"cfg", config=True)
        stream.push(config)
        for dts in range(0, 200, 40):
            stream.push(video(dts, keyframe=dts in (0, 120)))
        reader = stream.subscribe()
        registry.close(stream)
        return [packet async for packet in reader]

    packets = asyncio.run(scenario())
    assert packets[0].config and [packet.dts for packet in packets[1:]] == [120, 160]


def test_a_slow_reader_is_dropped_without_slowing_the_others():
    async def scenario():
        stream = StreamRegistry().open(KEY, "rtmp")
        slow = stream.subscribe(maxsize=4)
        seen = []
        stream.add_sink(seen.append)
        for dts in range(100):
            stream.push(video(dts, keyframe=dts == 0))
        return slow, seen, stream

    slow, seen, stream = asyncio.run(scenario())
    assert slow.overflowed and stream.subscriber_count == 0
    assert len(seen) == 100


def test_a_failing_sink_is_removed_and_others_go_on():
    stream = StreamRegistry().open(KEY, "rtmp")
    seen = []

    def broken(packet):
        raise RuntimeError("bug")

    stream.add_sink(broken)
    stream.add_sink(seen.append)
    stream.push(video(0, keyframe=True))
    stream.push(video(40))
    assert len(seen) == 2
    stream.remove_sink(seen.append)  # an equal bound method removes it
    stream.push(video(80))
    assert len(seen) == 2
