"""The HLS segmenter judged by ffprobe/ffmpeg, its playlist, and the packager on a StreamRegistry."""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
from pathlib import Path

import pytest

from media_engine.control import ApplicationConfig
from media_engine.hls.filesource import push_packets, read_packets
from media_engine.hls.segmenter import HlsPackager, HlsSegmenter
from media_engine.packets import MediaPacket, TrackKind
from media_engine.registry import StreamKey, StreamRegistry

CONFIG_2S = ApplicationConfig("default", "app", hls_segment_duration=2.0, hls_segment_count=10)


def ffprobe(path: Path) -> dict:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return json.loads(result.stdout)


def decode_errors(path: Path) -> str:
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr.strip()


def segment_all(packets: list[MediaPacket], config: ApplicationConfig = CONFIG_2S) -> HlsSegmenter:
    segmenter = HlsSegmenter(config)
    for packet in packets:
        segmenter.feed(packet)
    segmenter.finish()
    return segmenter


def write_segments(segmenter: HlsSegmenter, directory: Path) -> tuple[list[Path], Path]:
    paths = []
    for segment in segmenter.segments:
        path = directory / segment.name
        path.write_bytes(segment.data)
        paths.append(path)
    everything = directory / "all.ts"
    everything.write_bytes(b"".join(s.data for s in segmenter.segments))
    return paths, everything


def parse_playlist(text: str) -> tuple[dict[str, str], list[tuple[float, str]]]:
    tags: dict[str, str] = {}
    entries: list[tuple[float, str]] = []
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    for i, line in enumerate(lines):
        if line.startswith("#EXTINF:"):
            entries.append((float(line[8:].rstrip(",")), lines[i + 1]))
        elif line.startswith("#EXT-X-"):
            name, _, value = line[1:].partition(":")
            tags[name] = value
    return tags, entries


def test_audio_video_segments_judged_by_ffmpeg(av_flv: Path, tmp_path: Path) -> None:
    segmenter = segment_all(read_packets(av_flv))
    segments = segmenter.segments
    assert len(segments) == 5
    assert all(s.keyframe for s in segments)
    paths, everything = write_segments(segmenter, tmp_path)
    for path in paths:
        info = ffprobe(path)
        streams = {s["codec_type"]: s for s in info["streams"]}
        assert streams["video"]["codec_name"] == "h264"
        assert (streams["video"]["width"], streams["video"]["height"]) == (640, 360)
        assert streams["audio"]["codec_name"] == "aac"
        assert float(info["format"]["duration"]) == pytest.approx(2.0, abs=0.15)
        assert decode_errors(path) == ""
    info = ffprobe(everything)
    assert float(info["format"]["duration"]) == pytest.approx(10.0, abs=0.2)
    assert {s["codec_name"] for s in info["streams"]} == {"h264", "aac"}
    assert decode_errors(everything) == ""

    tags, entries = parse_playlist(segmenter.playlist().decode())
    assert tags["EXT-X-MEDIA-SEQUENCE"] == "0"
    assert tags["EXT-X-TARGETDURATION"] == str(max(2, math.ceil(max(d for d, _ in entries))))
    assert "EXT-X-ENDLIST" in tags
    assert [name for _, name in entries] == [s.name for s in segments]
    assert [d for d, _ in entries[:-1]] == [2.0] * 4
    assert sum(d for d, _ in entries) == pytest.approx(10.0, abs=0.15)


def test_audio_only_segments(audio_flv: Path, tmp_path: Path) -> None:
    segmenter = segment_all(read_packets(audio_flv))
    segments = segmenter.segments
    assert len(segments) == 5
    paths, everything = write_segments(segmenter, tmp_path)
    for path in paths:
        info = ffprobe(path)
        assert [s["codec_name"] for s in info["streams"]] == ["aac"]
        assert float(info["format"]["duration"]) == pytest.approx(2.0, abs=0.15)
    info = ffprobe(everything)
    assert float(info["format"]["duration"]) == pytest.approx(10.0, abs=0.2)
    assert decode_errors(everything) == ""
    tags, entries = parse_playlist(segmenter.playlist().decode())
    assert sum(d for d, _ in entries) == pytest.approx(10.0, abs=0.15)
    assert int(tags["EXT-X-TARGETDURATION"]) >= 2


def test_rolling_window_and_playlist_lifecycle(av_flv: Path) -> None:
    config = ApplicationConfig("default", "app", hls_segment_duration=2.0, hls_segment_count=3)
    segmenter = HlsSegmenter(config)
    packets = read_packets(av_flv)
    seen_sequences = []
    for packet in packets:
        segmenter.feed(packet)
        playlist = segmenter.playlist()
        if playlist is not None:
            tags, entries = parse_playlist(playlist.decode())
            assert "EXT-X-ENDLIST" not in tags
            assert len(entries) <= 3
            seen_sequences.append(int(tags["EXT-X-MEDIA-SEQUENCE"]))
    assert seen_sequences[0] == 0 and seen_sequences == sorted(seen_sequences)
    segmenter.finish()
    tags, entries = parse_playlist(segmenter.playlist().decode())
    assert "EXT-X-ENDLIST" in tags
    assert tags["EXT-X-MEDIA-SEQUENCE"] == "2"  # segments 2, 3, 4 of 5
    assert [s.sequence for s in segmenter.segments] == [2, 3, 4]
    assert re.fullmatch(r"seg_[0-9a-f]+_2\.ts", entries[0][1])
    assert segmenter.segment(entries[0][1]) is not None
    assert segmenter.segment("seg_0_0.ts") is None


def test_waits_for_a_keyframe_and_cuts_without_one() -> None:
    """Packets before the first keyframe are dropped; a stream without keyframes is cut anyway."""
    config = ApplicationConfig("default", "app", hls_segment_duration=1.0, hls_segment_count=5)
    segmenter = HlsSegmenter(config)
    avcc = b"\x01\x42\x00\x1e\xff\xe1\x00\x06\x67\x42\x00\x1e\xaa\xbb\x01\x00\x04\x68\xce\x3c\x80"
    segmenter.feed(MediaPacket(TrackKind.VIDEO, "h264", 0, 0, avcc, True, True))
    frame = b"\x00\x00\x00\x03\x41\x9a\x00"
    segmenter.feed(MediaPacket(TrackKind.VIDEO, "h264", 0, 0, frame))  # not a keyframe: dropped
    assert segmenter._need_keyframe
    idr = b"\x00\x00\x00\x03\x65\x88\x80"
    for t in range(40, 30_000, 40):
        segmenter.feed(MediaPacket(TrackKind.VIDEO, "h264", t, t, idr if t == 40 else frame, t == 40))
    assert len(segmenter.segments) == 1  # forced cut after 20 s without keyframes
    assert segmenter.segments[0].duration == pytest.approx(20.0)
    assert segmenter.target_duration == 20


def test_packager_on_a_registry(av_flv: Path) -> None:
    packets = read_packets(av_flv)

    async def main() -> None:
        registry = StreamRegistry()
        looked_up = []

        async def lookup(key: StreamKey) -> ApplicationConfig | None:
            looked_up.append(key)
            await asyncio.sleep(0.01)
            return CONFIG_2S if key.app == "app" else None

        packager = HlsPackager(registry, lookup, linger=0.3)
        packager.attach()
        key = StreamKey("default", "app", "cam")
        stream = registry.open(key, "rtmp")
        other = registry.open(StreamKey("default", "nohls", "x"), "rtmp")
        assert await packager.wait_ready(key, 0.01) is None  # no segment yet
        await push_packets(other, [packet for packet in packets if packet.config])
        await push_packets(stream, packets, realtime=False)
        registry.close(stream)
        registry.close(other)
        segmenter = await packager.wait_ready(key, 5)
        assert segmenter is not None
        for _ in range(100):
            if segmenter.ended:
                break
            await asyncio.sleep(0.01)
        assert segmenter.ended and segmenter.stream is stream
        tags, entries = parse_playlist(segmenter.playlist().decode())
        assert "EXT-X-ENDLIST" in tags and len(entries) == 5
        assert packager.get(other.key) is None
        assert set(looked_up) == {key, other.key}
        # the same name published again replaces the lingering session once its tracks are known
        again = registry.open(key, "rtmp")
        await asyncio.sleep(0.05)
        assert packager.get(key) is segmenter
        await push_packets(again, [packet for packet in packets if packet.config])
        await asyncio.sleep(0.05)
        assert packager.get(key) is not segmenter and packager.get(key).playlist() is None
        registry.close(again)
        await asyncio.sleep(0.5)  # linger elapsed: dropped
        assert packager.get(key) is None
        await packager.close()

    asyncio.run(main())


def test_ignores_unsupported_codecs_and_broken_configs(audio_flv: Path) -> None:
    segmenter = HlsSegmenter(CONFIG_2S)
    segmenter.feed(MediaPacket(TrackKind.VIDEO, "h264", 0, 0, b"\x05garbage", True, True))
    segmenter.feed(MediaPacket(TrackKind.VIDEO, "hevc", 0, 0, b"\x00\x00\x00\x01\x26", True))
    segmenter.feed(MediaPacket(TrackKind.DATA, "amf0", 0, 0, b"\x02", False, True))
    for packet in read_packets(audio_flv):
        segmenter.feed(packet)
    segmenter.finish()
    assert len(segmenter.segments) == 5  # the audio was packaged, as audio-only
