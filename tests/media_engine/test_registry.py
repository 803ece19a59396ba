"""The live stream registry: fan-out to queued readers and inline sinks, slow readers dropped."""

import asyncio

import pytest

from media_engine.packets import MediaPacket, TrackKind
from media_engine.registry import (
    READY_WAIT_ANNOUNCED_MS,
    READY_WAIT_UNANNOUNCED_MS,
    StreamAlreadyLive,
    StreamKey,
    StreamRegistry,
)

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


def audio(dts: int, config: bool = False) -> MediaPacket:
    return MediaPacket(TrackKind.AUDIO, "aac", dts, dts, b"\x12\x10" if config else b"a" * 10, config=config)


def video_config() -> MediaPacket:
    return MediaPacket(TrackKind.VIDEO, "h264", 0, 0, b"cfg", config=True)


def started_streams(registry: StreamRegistry) -> list:
    started = []
    registry.on_started(started.append)
    return started


def test_a_stream_starts_once_its_announced_tracks_are_configured_whatever_comes_first():
    registry = StreamRegistry()
    started = started_streams(registry)
    stream = registry.open(KEY, "rtmp")
    stream.announce(video=True, audio=True)
    stream.push(audio(0, config=True))
    for dts in range(0, 2000, 23):  # audio first, for a while (an encoder starting up)
        stream.push(audio(dts))
    assert started == [] and registry.streams() == [] and registry.get(KEY) is stream
    stream.push(video_config())
    assert started == [stream] and registry.streams() == [stream]
    assert [track.kind for track in stream.tracks()] == ["video", "audio"]


def test_an_audio_only_source_starts_without_waiting_when_it_says_so_and_a_little_later_otherwise():
    registry = StreamRegistry()
    started = started_streams(registry)
    announced = registry.open(KEY, "rtmp")
    announced.announce(video=False, audio=True)
    announced.push(audio(0, config=True))
    assert started == [announced]

    silent = registry.open(StreamKey("default", "app", "radio"), "rtmp")
    silent.push(audio(0, config=True))
    dts = 0
    while not silent.ready:
        silent.push(audio(dts))
        dts += 23
    assert started == [announced, silent]
    assert READY_WAIT_UNANNOUNCED_MS <= dts <= READY_WAIT_UNANNOUNCED_MS + 50


def test_an_announced_track_that_never_comes_is_waited_for_a_bounded_time():
    registry = StreamRegistry()
    stream = registry.open(KEY, "rtmp")
    stream.announce(video=True, audio=True)
    stream.push(audio(0, config=True))
    dts = 0
    while not stream.ready:
        stream.push(audio(dts))
        dts += 23
    assert READY_WAIT_ANNOUNCED_MS <= dts <= READY_WAIT_ANNOUNCED_MS + 50
    assert [track.kind for track in stream.tracks()] == ["audio"]


def test_a_publisher_that_never_sends_media_is_never_a_stream():
    registry = StreamRegistry()
    started, ended = started_streams(registry), []
    registry.on_ended(ended.append)
    stream = registry.open(KEY, "rtmp")
    stream.announce(video=True, audio=True)
    registry.close(stream)
    assert started == [] and ended == [] and stream.ended
    again = registry.open(KEY, "rtmp")  # the name is free again
    again.push(video_config())
    again.push(audio(0, config=True))
    registry.close(again)
    assert started == [again] and ended == [again]


def test_readers_joining_at_the_start_get_every_packet_once():
    registry = StreamRegistry()
    readers = []
    registry.on_started(lambda stream: readers.append(stream.subscribe()))
    stream = registry.open(KEY, "rtmp")
    stream.push(audio(0, config=True))
    stream.push(video_config())
    stream.push(video(0, keyframe=True))
    stream.push(video(40))
    (reader,) = readers
    packets = reader.drain()
    assert [(p.kind, p.config, p.dts) for p in packets] == [
        (TrackKind.VIDEO, True, 0),
        (TrackKind.AUDIO, True, 0),
        (TrackKind.VIDEO, False, 0),
        (TrackKind.VIDEO, False, 40),
    ]


def test_only_listeners_that_ask_for_mirrors_hear_of_them():
    registry = StreamRegistry()
    events: list[str] = []
    registry.on_started(lambda stream: events.append(f"control started {stream.key.name}"))
    registry.on_ended(lambda stream: events.append(f"control ended {stream.key.name}"))
    registry.on_started(lambda stream: events.append(f"packager started {stream.key.name}"), mirrors=True)
    registry.on_ended(lambda stream: events.append(f"packager ended {stream.key.name}"), mirrors=True)
    for name, origin in (("local", None), ("mirrored", "node-a")):
        stream = registry.open(StreamKey("default", "app", name), "rtmp", origin=origin)
        assert stream.origin == origin
        stream.push(video_config())
        stream.push(audio(0, config=True))
        assert stream.ready and registry.streams()[-1] is stream
        registry.close(stream)
    assert events == [
        "control started local",
        "packager started local",
        "control ended local",
        "packager ended local",
        "packager started mirrored",
        "packager ended mirrored",
    ]


def test_a_mirrored_name_cannot_be_published():
    registry = StreamRegistry()
    registry.open(KEY, "rtmp", origin="node-a")
    with pytest.raises(StreamAlreadyLive):
        registry.open(KEY, "rtmp")


def test_passive_sinks_are_not_readers():
    registry = StreamRegistry()
    stream = registry.open(KEY, "rtmp")
    history, packager = [], []
    stream.add_sink(history.append, passive=True)
    assert stream.reader_count == 0
    stream.add_sink(packager.append)
    reader = stream.subscribe()
    assert stream.reader_count == 2
    stream.push(video(0, keyframe=True))
    assert len(history) == len(packager) == 1
    stream.remove_sink(packager.append)
    reader.close()
    assert stream.reader_count == 0
    stream.remove_sink(history.append)
    assert stream.reader_count == 0
