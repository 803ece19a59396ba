"""HLS and LL-HLS packaged on demand: only while players ask, starting from the stream's cached GOP."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from media_engine.control import ApplicationConfig
from media_engine.hls.filesource import push_packets, read_packets
from media_engine.hls.fmp4 import id3_tag, id3_text_frame
from media_engine.hls.history import PacketHistory
from media_engine.hls.llhls import LlHlsPackager
from media_engine.hls.segmenter import HlsPackager
from media_engine.hls.store import FileFolder
from media_engine.packets import MediaPacket
from media_engine.registry import StreamKey, StreamRegistry

CONFIG = ApplicationConfig(
    "default", "app", hls_segment_duration=0.5, llhls_part_duration=0.5, llhls_segment_duration=2.0
)
KEY = StreamKey("default", "app", "cam")
SPEED = 2.0  # media seconds per wall second


def looped(packets: list[MediaPacket], times: int) -> Iterator[MediaPacket]:
    """The file's packets ``times`` over, timestamps running on (codec configs only once)."""
    media = [packet for packet in packets if not packet.config]
    span = media[-1].dts - media[0].dts + 40
    yield from (packet for packet in packets if packet.config)
    for turn in range(times):
        for packet in media:
            yield replace(packet, dts=packet.dts + turn * span, pts=packet.pts + turn * span)


def ffprobe_streams(path: Path) -> list[str]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    return sorted(stream["codec_name"] for stream in json.loads(result.stdout)["streams"])


async def lookup(key: StreamKey) -> ApplicationConfig | None:
    return CONFIG if key.app == "app" else None


# Segments of 2 s, three in a playlist: a window that a 6 s history covers.
CONFIG_3X2 = replace(CONFIG, hls_segment_duration=2.0, hls_segment_count=3)


async def lookup_3x2(key: StreamKey) -> ApplicationConfig:
    return CONFIG_3X2


def with_history(tmp_path: Path) -> tuple[StreamRegistry, FileFolder, PacketHistory]:
    """A registry whose streams keep their last 6 s (the 3x2 window) as files under ``tmp_path``."""
    registry = StreamRegistry()
    folder = FileFolder(tmp_path)
    history = PacketHistory(registry, folder, seconds=6)
    history.attach()
    return registry, folder, history


def test_hls_of_an_unwatched_stream_starts_at_the_first_request_and_stops_when_nobody_asks(
    av_flv: Path, tmp_path: Path
) -> None:
    packets = read_packets(av_flv)

    async def main() -> None:
        registry = StreamRegistry()
        packager = HlsPackager(registry, lookup, on_demand=True, idle_timeout=0.5)
        packager.attach()
        stream = registry.open(KEY, "rtmp")
        feeder = asyncio.create_task(push_packets(stream, looped(packets, 3), speed=SPEED))
        try:
            await asyncio.sleep(1.0)
            assert packager.get(KEY) is None and packager.keys() == []  # live, nobody asked: no packaging

            # A player asks: the first playlist comes once the first segment (from the GOP) is cut.
            segmenter = await packager.wait_ready(KEY, 5)
            assert segmenter is not None and segmenter.playlist() is not None
            first = segmenter.segments[0]
            assert first.keyframe
            (tmp_path / "first.ts").write_bytes(first.data)
            assert ffprobe_streams(tmp_path / "first.ts") == ["aac", "h264"]

            # Players keep asking: packaging goes on.
            for _ in range(4):
                await asyncio.sleep(0.5)
                assert packager.watch(KEY) is segmenter
            # Nobody asks any more: packaging stops (three segment durations at least), the stream stays live.
            for _ in range(60):
                if packager.get(KEY) is None:
                    break
                await asyncio.sleep(0.1)
            assert packager.get(KEY) is None and registry.get(KEY) is stream and not stream.ended

            # The next player gets a new packaging session of the same publication.
            again = await packager.wait_ready(KEY, 5)
            assert again is not None and again is not segmenter and again.session != segmenter.session
            assert again.playlist() is not None
        finally:
            feeder.cancel()
            registry.close(stream)
            await packager.close()

    asyncio.run(main())


def test_llhls_first_request_is_answered_at_once_from_the_gop_and_blocking_reload_works(av_flv: Path) -> None:
    packets = read_packets(av_flv)

    async def main() -> None:
        registry = StreamRegistry()
        packager = LlHlsPackager(registry, lookup, on_demand=True)
        packager.attach()
        stream = registry.open(KEY, "rtmp")
        media = list(looped(packets, 2))
        # 1.4 s of media into the first GOP (2 s), then the publisher pauses: nothing new comes.
        start = next(index for index, packet in enumerate(media) if not packet.config and packet.dts >= 1400)
        await push_packets(stream, media[:start], realtime=False)
        feeder = None
        try:
            assert packager.get(KEY) is None
            # The first request is answered from the cached GOP alone: parts up to the live edge.
            segmenter = await packager.wait_ready(KEY, 5)
            assert segmenter is not None and segmenter.current_segment is not None
            assert len(segmenter.current_segment.parts) >= 2
            assert segmenter.current_segment.parts[0].independent
            # Dated from the GOP's first frame (1.4 s of media ago), not from now.
            age = time.time() - segmenter.current_segment.program_date_time
            assert 1.3 < age < 2.5, age
            feeder = asyncio.create_task(push_packets(stream, media[start:], speed=SPEED))
            playlist = segmenter.playlist().decode()
            assert "#EXT-X-PART:" in playlist and "#EXT-X-PRELOAD-HINT" in playlist

            # Blocking reload: the request for the next part is answered once the publisher goes on.
            current = segmenter.current_segment
            msn, next_part = current.msn, len(current.parts)
            assert await segmenter.wait_for(msn, next_part, segmenter.blocking_timeout)
            assert segmenter.file(init_name := segmenter.init_name) and init_name.startswith("init_0_video_")
        finally:
            if feeder is not None:
                feeder.cancel()
            registry.close(stream)
            await packager.close()

    asyncio.run(main())


def test_a_publisher_coming_back_is_packaged_at_once_only_while_players_ask(av_flv: Path) -> None:
    packets = read_packets(av_flv)[:200]

    async def main() -> None:
        registry = StreamRegistry()
        packager = HlsPackager(registry, lookup, on_demand=True, linger=5)
        packager.attach()
        stream = registry.open(KEY, "rtmp")
        await push_packets(stream, packets, realtime=False)
        packager.watch(KEY)
        await asyncio.sleep(0.05)
        first = packager.get(KEY)
        assert first is not None
        registry.close(stream)
        await asyncio.sleep(0.05)
        assert packager.get(KEY) is first and first.ended  # lingering for its players

        # Players were asking a moment ago: the new publication is packaged without waiting for them.
        again = registry.open(KEY, "rtmp")
        await push_packets(again, packets[:60], realtime=False)  # (a stream starts once its tracks are known)
        await asyncio.sleep(0.05)
        second = packager.get(KEY)
        assert second is not None and second is not first and not second.ended
        registry.close(again)

        # A stream nobody asked for is not packaged when it starts.
        other_key = StreamKey("default", "app", "other")
        other = registry.open(other_key, "rtmp")
        await push_packets(other, packets[:60], realtime=False)
        assert other.ready
        await asyncio.sleep(0.05)
        assert packager.get(other_key) is None
        # Requests for names that are not live start nothing.
        assert packager.watch(StreamKey("default", "app", "nobody")) is None
        assert packager.keys() == [KEY]
        registry.close(other)
        await packager.close()

    asyncio.run(main())


def test_timed_metadata_for_an_unwatched_stream_starts_its_packaging_and_reaches_the_output(
    av_flv: Path, tmp_path: Path
) -> None:
    packets = read_packets(av_flv)
    tag = id3_tag([id3_text_frame("TIT2", "on demand")])

    async def main() -> None:
        registry = StreamRegistry()
        packager = HlsPackager(registry, lookup, on_demand=True)
        packager.attach()
        stream = registry.open(KEY, "rtmp")
        feeder = asyncio.create_task(push_packets(stream, looped(packets, 2), speed=SPEED))
        try:
            await asyncio.sleep(0.5)
            assert packager.get(KEY) is None
            assert packager.add_timed_metadata(KEY, tag)  # before its segmenter even exists
            segmenter = await packager.wait_ready(KEY, 5)
            assert segmenter is not None
            path = tmp_path / "event.ts"
            path.write_bytes(segmenter.segments[0].data)
            assert ffprobe_streams(path) == ["aac", "h264", "timed_id3"]
            assert not packager.add_timed_metadata(StreamKey("default", "app", "nobody"), tag)
        finally:
            feeder.cancel()
            registry.close(stream)
            await packager.close()

    asyncio.run(main())


def test_with_a_history_the_first_playlist_lists_a_window_at_once(av_flv: Path, tmp_path: Path) -> None:
    packets = read_packets(av_flv)

    async def main() -> None:
        registry, folder, history = with_history(tmp_path)
        packager = HlsPackager(registry, lookup_3x2, on_demand=True, folder=folder, history=history)
        packager.attach()
        stream = registry.open(KEY, "rtmp")
        media = list(looped(packets, 3))
        start = next(index for index, packet in enumerate(media) if not packet.config and packet.dts >= 13000)
        await push_packets(stream, media[:start], realtime=False)  # 13 s (GOP 2 s): nobody watches
        feeder = None
        try:
            assert packager.get(KEY) is None
            # Only the last 6 s (and the GOP being received) are kept, as files.
            kept = [path for path in folder.root.rglob("gop_*")]
            assert 3 <= len(kept) <= 4, kept

            # Answered from the history alone (nothing new comes meanwhile): three whole segments.
            segmenter = await packager.wait_ready(KEY, 5)
            segments = segmenter.segments
            assert len(segments) == 3 and all(segment.keyframe for segment in segments)
            # Whole GOPs, each once: 2 s segments with nothing missing or repeated between them.
            # (the file's loop point adds a frame's worth, 40 ms, at most)
            assert all(1.95 < segment.duration < 2.15 for segment in segments), segments
            path = tmp_path / "window.ts"
            path.write_bytes(b"".join(segment.data for segment in segments))
            assert ffprobe_streams(path) == ["aac", "h264"]
            probe = subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            assert 5.8 < float(probe.stdout) < 6.3
            # The window goes on with the live packets.
            feeder = asyncio.create_task(push_packets(stream, media[start:], speed=4.0))
            for _ in range(50):
                if segmenter.segments[-1].sequence > segments[-1].sequence:
                    break
                await asyncio.sleep(0.1)
            assert segmenter.segments[-1].sequence > segments[-1].sequence
        finally:
            if feeder is not None:
                feeder.cancel()
            registry.close(stream)
            await packager.close()
            history.close()
            folder.close()

    asyncio.run(main())


def test_an_audio_only_stream_has_a_history_too(audio_flv: Path, tmp_path: Path) -> None:
    packets = read_packets(audio_flv)

    async def main() -> None:
        registry, folder, history = with_history(tmp_path)
        packager = HlsPackager(registry, lookup_3x2, on_demand=True, folder=folder, history=history)
        packager.attach()
        stream = registry.open(KEY, "rtmp")
        await push_packets(stream, packets, realtime=False)  # 10 s of AAC, no keyframes to cut on
        try:
            segmenter = await packager.wait_ready(KEY, 5)
            assert segmenter is not None and len(segmenter.segments) >= 2
            path = tmp_path / "audio.ts"
            path.write_bytes(b"".join(segment.data for segment in segmenter.segments))
            assert ffprobe_streams(path) == ["aac"]
            assert 3.5 < sum(segment.duration for segment in segmenter.segments) < 8.5
        finally:
            registry.close(stream)
            await packager.close()
            history.close()
            folder.close()

    asyncio.run(main())


def test_the_history_a_packaging_starts_from_is_not_kept_in_memory(av_flv: Path, tmp_path: Path) -> None:
    packets = read_packets(av_flv)

    async def main() -> None:
        registry, folder, history = with_history(tmp_path)
        packagers = [
            cls(registry, lookup_3x2, on_demand=True, folder=folder, history=history)
            for cls in (HlsPackager, LlHlsPackager)
        ]
        for packager in packagers:
            packager.attach()
        stream = registry.open(KEY, "rtmp")
        media = list(looped(packets, 2))
        await push_packets(stream, media, realtime=False)
        gc.collect()
        existing = {id(o) for o in gc.get_objects() if isinstance(o, MediaPacket)}  # (this test's, and others')
        try:
            for packager in packagers:
                segmenter = await packager.wait_ready(KEY, 5)
                assert segmenter is not None and segmenter.segments
            await asyncio.sleep(0.1)  # (the packaging tasks wait for the stream's end)
            # The window is in the segmenters' files: the packets replayed from the history into them
            # (decoded anew from its files) are gone, only the stream's own (pushed) packets remain.
            gc.collect()
            replayed = [o for o in gc.get_objects() if isinstance(o, MediaPacket) and id(o) not in existing]
            assert replayed == []
        finally:
            registry.close(stream)
            for packager in packagers:
                await packager.close()
            history.close()
            folder.close()

    asyncio.run(main())


def test_catch_ups_take_turns_and_leave_the_loop_to_other_work_between_gops(av_flv: Path, tmp_path: Path) -> None:
    """Two streams asked for at once: each one's history is fed one GOP at a time, with the loop's other
    work (here a ticker; in the engine, segment requests of streams already packaged) in between, and the
    second stream's catch-up starts only once the first's has ended."""
    packets = read_packets(av_flv)
    events: list[str] = []

    class RecordingPackager(HlsPackager):
        def make_segmenter(self, config, stream):
            segmenter = super().make_segmenter(config, stream)
            feed = segmenter.feed

            def recorded(packet: MediaPacket) -> None:
                if not packet.config and (not events or events[-1] != stream.key.name):
                    events.append(stream.key.name)
                feed(packet)

            segmenter.feed = recorded
            return segmenter

    async def main() -> None:
        registry, folder, history = with_history(tmp_path)
        packager = RecordingPackager(registry, lookup_3x2, on_demand=True, folder=folder, history=history)
        packager.attach()
        media = list(looped(packets, 3))
        start = next(index for index, packet in enumerate(media) if not packet.config and packet.dts >= 13000)
        streams = [registry.open(StreamKey("default", "app", name), "rtmp") for name in ("one", "two")]
        for stream in streams:
            await push_packets(stream, media[:start], realtime=False)  # 13 s each, nobody watching
        ticking = True

        async def ticker() -> None:
            while ticking:
                if events and events[-1] != "tick":
                    events.append("tick")
                await asyncio.sleep(0)

        ticks = asyncio.create_task(ticker())
        try:
            segmenters = await asyncio.gather(*(packager.wait_ready(stream.key, 10) for stream in streams))
            assert all(len(segmenter.segments) == 3 for segmenter in segmenters)
        finally:
            ticking = False
            await ticks
            for stream in streams:
                registry.close(stream)
            await packager.close()
            history.close()
            folder.close()
        # Each stream's packets came in several runs with ticks between them (one per GOP of its 6 s), and
        # all of "one"'s before any of "two"'s.
        fed = [event for event in events if event != "tick"]
        assert fed.count("one") >= 3 and fed.count("two") >= 3, events
        assert fed.index("two") > len(fed) - 1 - fed[::-1].index("one"), events

    asyncio.run(main())
