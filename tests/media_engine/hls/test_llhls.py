"""LL-HLS: playlists read by the m3u8 package, media judged by ffprobe, blocking reload, and the HTTP routes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import NamedTuple

import aiohttp
import m3u8
import pytest

from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.hls.filesource import make_test_flv, push_packets, read_packets
from media_engine.hls.fmp4 import ID3_EMSG_SCHEME, SYNC_SAMPLE_FLAGS, id3_tag, id3_txxx_frame
from media_engine.hls.llhls import (
    BadBlockingRequest,
    LlHlsPackager,
    LlHlsSegmenter,
    parse_blocking_request,
)
from media_engine.hls.segmenter import HlsPackager
from media_engine.http.server import MediaHttpServer
from media_engine.packets import MediaPacket, TrackKind
from media_engine.registry import LiveStream, StreamKey, StreamRegistry

CLOCK_ORIGIN = 1_700_000_000.0
KEY = StreamKey("default", "app", "stream")


def config(segment_count: int = 10) -> ApplicationConfig:
    return ApplicationConfig(
        "default",
        "app",
        llhls_part_duration=0.5,
        llhls_segment_duration=2.0,
        llhls_segment_count=segment_count,
    )


def segmenter_for(packets: list[MediaPacket], *, segment_count: int = 10, finish: bool = True) -> LlHlsSegmenter:
    segmenter = LlHlsSegmenter(config(segment_count), clock=lambda: CLOCK_ORIGIN)
    for packet in packets:
        segmenter.feed(packet)
    if finish:
        segmenter.finish()
    return segmenter


def parse(segmenter: LlHlsSegmenter) -> m3u8.M3U8:
    playlist = segmenter.playlist()
    assert playlist is not None
    return m3u8.loads(playlist.decode())


def walk(data: bytes) -> list[tuple[bytes, bytes]]:
    found = []
    position = 0
    while position < len(data):
        size, kind = struct.unpack_from(">I4s", data, position)
        assert size >= 8 and position + size <= len(data)
        found.append((kind, data[position + 8 : position + size]))
        position += size
    return found


def first_sample_is_sync(part: bytes, track_id: int = 1) -> bool:
    """Whether the first sample of ``track_id`` in a part (moof/mdat) is a sync sample."""
    moof = next(body for kind, body in walk(part) if kind == b"moof")
    for kind, traf in walk(moof):
        if kind == b"traf" and struct.unpack_from(">I", dict(walk(traf))[b"tfhd"], 4)[0] == track_id:
            return struct.unpack_from(">I", dict(walk(traf))[b"trun"], 12 + 8)[0] == SYNC_SAMPLE_FLAGS
    raise AssertionError(f"no track {track_id} in the part")


def ffprobe(target: str | Path) -> dict:
    assert shutil.which("ffprobe"), "ffprobe (Debian's ffmpeg package) is required"
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-count_frames", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    return {stream["codec_type"]: stream for stream in json.loads(result.stdout)["streams"]}


def counts(packets: list[MediaPacket]) -> tuple[int, int]:
    video = sum(1 for p in packets if p.kind is TrackKind.VIDEO and not p.config)
    audio = sum(1 for p in packets if p.kind is TrackKind.AUDIO and not p.config)
    return video, audio


@pytest.fixture(scope="module")
def av_packets(av_flv: Path) -> list[MediaPacket]:
    return read_packets(av_flv)


# --- playlists -------------------------------------------------------------------------------------


def test_live_media_playlist(av_packets: list[MediaPacket]) -> None:
    segmenter = segmenter_for(av_packets, segment_count=4, finish=False)
    playlist = parse(segmenter)
    assert playlist.version == 9 and playlist.target_duration == 2
    assert playlist.part_inf.part_target == 0.5
    assert playlist.server_control.can_block_reload == "YES"
    assert playlist.server_control.part_hold_back >= 2 * playlist.part_inf.part_target
    assert playlist.media_sequence == 0 and not playlist.is_endlist
    *complete, live = playlist.segments
    assert [s.uri for s in complete] == [s.name for s in segmenter.segments] and len(complete) == 4
    assert live.uri is None and live.parts  # the segment in progress: parts only
    # (m3u8 gives the MAP and the date only to the segments with an URI)
    assert all(s.init_section is not None and s.init_section.uri == segmenter.init_name for s in complete)
    for number, segment in enumerate(complete):
        assert segment.program_date_time.timestamp() == pytest.approx(CLOCK_ORIGIN + 2.0 * number)
    assert (
        f'#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:28.000Z\n#EXT-X-PART:DURATION=0.48000,URI="{live.parts[0].uri}"'
        in segmenter.playlist().decode()
    )
    # Parts are listed near the live edge only (3 target durations), at least for the last complete segment.
    assert not complete[0].parts and all(s.parts for s in complete[1:])
    for segment in complete:
        assert segment.duration == pytest.approx(2.0, abs=1e-6)
        if segment.parts:
            assert sum(part.duration for part in segment.parts) == pytest.approx(segment.duration, abs=1e-4)
    for segment in playlist.segments:
        assert segment.parts[0].independent == "YES" if segment.parts else True
        for part in segment.parts:
            assert 0 < part.duration <= playlist.part_inf.part_target
            data = segmenter.file(part.uri)
            assert data is not None
            assert (part.independent == "YES") == first_sample_is_sync(data)
    current = segmenter.current_segment
    assert current is not None and current.msn == 4
    assert playlist.preload_hint.hint_type == "PART"
    assert playlist.preload_hint.uri == f"part_0_4_{len(current.parts)}_video_{segmenter.session}_llhls.m4s"
    assert segmenter.file(playlist.preload_hint.uri) is None  # not yet

    segmenter.finish()
    ended = parse(segmenter)
    assert ended.is_endlist and ended.preload_hint is None
    assert all(s.uri is not None for s in ended.segments) and len(ended.segments) == 4
    assert ended.media_sequence == 1
    for segment in segmenter.segments:
        if segment.parts:
            assert segmenter.file(segment.name) == b"".join(segmenter.file(p.name) for p in segment.parts)


def test_default_parts_are_whole_frames_within_the_target_at_30_and_25_fps(tmp_path: Path) -> None:
    """The platform's default part target (0.2 s, glass-to-glass under 1 s) holds 6 frames at 30 fps and 5 at 25
    fps despite millisecond timestamps (33, 34, 33 ms...): no part above PART-TARGET, none below 85 % of it
    (RFC 8216bis 4.4.4.9), and PART-HOLD-BACK is 3 part targets."""
    defaults = ApplicationConfig("default", "app")
    assert defaults.llhls_part_duration == 0.2
    for fps, frames, segment_duration in ((30, 6, 6.0), (25, 5, 6.0), (30, 6, 1.0)):
        flv = tmp_path / f"{fps}.flv"
        if not flv.exists():
            make_test_flv(flv, duration=3.0, fps=fps, gop=fps)
        segmenter = LlHlsSegmenter(
            dataclasses.replace(defaults, llhls_segment_duration=segment_duration), clock=lambda: CLOCK_ORIGIN
        )
        frame = 0
        hints, made = set(), set()
        for packet in read_packets(flv):
            if packet.kind is TrackKind.VIDEO and not packet.config:  # rounded, as many encoders stamp them
                stamp = round(frame * 1000 / fps)
                packet = dataclasses.replace(packet, dts=stamp, pts=stamp + packet.pts - packet.dts)
                frame += 1
            segmenter.feed(packet)
            if segmenter.playlist() is not None:
                hints.add(m3u8.loads(segmenter.playlist().decode()).preload_hint.uri)
                made |= {part.name for segment in segmenter.segments for part in segment.parts}
                made |= {part.name for part in segmenter.current_segment.parts}
        # Parts are closed by the frame that fills them, but the preload hint never names a part that won't come
        # (at a segment's end, the last part is closed with the next keyframe).
        current = segmenter.current_segment
        assert hints - made == {f"part_0_{current.msn}_{len(current.parts)}_video_{segmenter.session}_llhls.m4s"}
        assert len(segmenter.segments) == (0 if segment_duration == 6.0 else 2) and len(made) >= 10
        playlist = parse(segmenter)
        assert playlist.part_inf.part_target == 0.2
        assert playlist.server_control.part_hold_back == pytest.approx(0.6)
        parts = [part for segment in segmenter.segments for part in segment.parts] + segmenter.current_segment.parts
        assert len(parts) >= 10
        assert all(part.duration == pytest.approx(frames / fps, abs=0.0015) for part in parts), (fps, parts)
        assert [part.independent for part in parts[:10]] == [index % (fps // frames) == 0 for index in range(10)]


def test_master_playlist(av_packets: list[MediaPacket]) -> None:
    segmenter = segmenter_for(av_packets)
    master = m3u8.loads(segmenter.master_playlist().decode())
    assert master.is_variant and len(master.playlists) == 1
    variant = master.playlists[0]
    assert variant.uri == segmenter.chunklist_name == "chunklist_0_video_llhls.m3u8"
    assert variant.stream_info.codecs == "avc1.64001e,mp4a.40.2"
    assert variant.stream_info.resolution == (640, 360)
    sizes = [len(segmenter.file(s.name)) * 8 / s.duration for s in segmenter.segments]
    assert variant.stream_info.bandwidth == round(max(sizes)) > 0


def test_nothing_before_the_first_keyframe(av_packets: list[MediaPacket]) -> None:
    segmenter = LlHlsSegmenter(config())
    for packet in av_packets:
        if not packet.config and packet.keyframe and packet.kind is TrackKind.VIDEO:
            break
        segmenter.feed(packet)
    assert segmenter.playlist() is None and segmenter.master_playlist() is None and segmenter.init_name == ""


# --- media -----------------------------------------------------------------------------------------


def test_segments_and_parts_decode(av_packets: list[MediaPacket], tmp_path: Path) -> None:
    segmenter = segmenter_for(av_packets)
    init = segmenter.file(segmenter.init_name)
    segments = segmenter.segments
    assert len(segments) == 5 and all(s.duration == pytest.approx(2.0) for s in segments)
    everything = tmp_path / "all.mp4"
    everything.write_bytes(init + b"".join(segmenter.file(s.name) for s in segments))
    streams = ffprobe(everything)
    video_count, audio_count = counts(av_packets)
    assert streams["video"]["codec_name"] == "h264"
    assert (streams["video"]["width"], streams["video"]["height"]) == (640, 360)
    assert int(streams["video"]["nb_read_frames"]) == video_count == 250
    assert abs(float(streams["video"]["duration"]) - 10.0) < 0.040
    assert streams["audio"]["codec_name"] == "aac"
    assert int(streams["audio"]["nb_read_frames"]) == audio_count

    one = tmp_path / "one.mp4"
    one.write_bytes(init + segmenter.file(segments[1].name))
    streams = ffprobe(one)
    assert int(streams["video"]["nb_read_frames"]) == 50
    assert abs(float(streams["video"]["start_time"]) - 2.0) <= 0.2

    part = tmp_path / "part.mp4"
    part.write_bytes(init + segmenter.file(segments[4].parts[0].name))
    assert int(ffprobe(part)["video"]["nb_read_frames"]) == 12  # 0.48 s at 25 fps


def test_audio_only_stream(audio_flv: Path, tmp_path: Path) -> None:
    packets = read_packets(audio_flv)
    segmenter = segmenter_for(packets)
    assert segmenter.chunklist_name == "chunklist_0_audio_llhls.m3u8"
    playlist = parse(segmenter)
    frame = 1024 / 44100
    assert playlist.is_endlist and len(playlist.segments) == 6  # 5 x 86 frames (1.997 s), then 1 frame
    # (parts are listed for the segments that end within 3 target durations of the end)
    assert sum(s.duration for s in playlist.segments) == pytest.approx(counts(packets)[1] * frame, abs=1e-4)
    *full, last = playlist.segments
    assert all(2.0 - frame < segment.duration <= 2.0 for segment in full) and last.duration <= 2.0
    assert [bool(segment.parts) for segment in playlist.segments] == [False, False, True, True, True, True]
    for segment in playlist.segments[2:]:
        assert sum(p.duration for p in segment.parts) == pytest.approx(segment.duration, abs=1e-4)
        assert all(p.independent == "YES" and p.duration <= 0.5 for p in segment.parts)
    master = segmenter.master_playlist().decode()
    assert 'CODECS="mp4a.40.2"' in master and "RESOLUTION" not in master
    path = tmp_path / "audio.mp4"
    path.write_bytes(segmenter.file(segmenter.init_name) + b"".join(segmenter.file(s.name) for s in segmenter.segments))
    streams = ffprobe(path)
    assert set(streams) == {"audio"} and int(streams["audio"]["nb_read_frames"]) == counts(packets)[1]


def test_codec_change_starts_a_new_init_segment(av_packets: list[MediaPacket], tmp_path: Path) -> None:
    second = read_packets(make_test_flv(tmp_path / "small.flv", duration=2, size="320x180", fps=25, gop=25))
    shifted = [
        p if p.config else MediaPacket(p.kind, p.codec, p.dts + 10_000, p.pts + 10_000, p.payload, p.keyframe)
        for p in second
    ]
    segmenter = segmenter_for(av_packets + shifted)
    playlist = parse(segmenter)
    maps = [s.init_section.uri for s in playlist.segments]
    assert [s.discontinuity for s in playlist.segments] == [False] * 5 + [True]
    assert maps[:5] == [maps[0]] * 5 and maps[5] != maps[0]
    assert playlist.dumps().count("#EXT-X-MAP") == 2
    path = tmp_path / "after.mp4"
    path.write_bytes(segmenter.file(maps[5]) + segmenter.file(playlist.segments[5].uri))
    streams = ffprobe(path)
    assert (streams["video"]["width"], streams["video"]["height"]) == (320, 180)
    assert int(streams["video"]["nb_read_frames"]) == 50


def test_timed_metadata_goes_before_the_next_part(av_packets: list[MediaPacket]) -> None:
    segmenter = LlHlsSegmenter(config())
    tag = id3_tag([id3_txxx_frame("AirenSoft", "OvenMediaEngine")])
    packets = iter(av_packets)
    while segmenter.playlist() is None:
        segmenter.feed(next(packets))
    segmenter.add_timed_metadata(tag)
    current = segmenter.current_segment
    while len(current.parts) < 2:
        segmenter.feed(next(packets))
    (kind, body), (next_kind, _), _ = walk(current.parts[1].data)
    assert (kind, next_kind) == (b"emsg", b"moof")
    timescale, presentation_time = struct.unpack_from(">IQ", body, 4)
    assert (timescale, presentation_time) == (90_000, 480 * 90)  # the start of the part
    assert body[24:].split(b"\x00", 2) == [ID3_EMSG_SCHEME.encode(), b"", tag]
    assert walk(current.parts[0].data)[0][0] == b"moof"


# --- blocking requests -------------------------------------------------------------------------------


def test_blocking_request_parameters() -> None:
    assert parse_blocking_request({}) is None
    assert parse_blocking_request({"_HLS_msn": "12"}) == (12, None)
    assert parse_blocking_request({"_HLS_msn": "12", "_HLS_part": "3", "_HLS_skip": "YES"}) == (12, 3)
    for bad in (
        {"_HLS_part": "1"},
        {"_HLS_msn": "x"},
        {"_HLS_msn": "-1"},
        {"_HLS_msn": "1.5"},
        {"_HLS_msn": "1", "_HLS_part": ""},
    ):
        with pytest.raises(BadBlockingRequest):
            parse_blocking_request(bad)


def test_blocking_reload_returns_as_soon_as_the_part_appears(av_packets: list[MediaPacket]) -> None:
    async def main() -> None:
        segmenter = LlHlsSegmenter(config())
        packets = iter(av_packets)
        while segmenter.playlist() is None:
            segmenter.feed(next(packets))
        current = segmenter.current_segment
        msn, awaited = current.msn, len(current.parts)
        assert (msn, awaited) == (0, 1) and not segmenter.has(msn, awaited)
        hint = m3u8.loads(segmenter.playlist().decode()).preload_hint.uri
        part_waiter = asyncio.create_task(segmenter.wait_for(msn, awaited, timeout=10))
        hint_waiter = asyncio.create_task(segmenter.wait_for_file(hint, timeout=10))
        segment_waiter = asyncio.create_task(segmenter.wait_for(msn, None, timeout=10))
        await asyncio.sleep(0.01)
        assert not part_waiter.done() and not hint_waiter.done() and not segment_waiter.done()
        while not segmenter.has(msn, awaited):
            segmenter.feed(next(packets))
            if not segmenter.has(msn, awaited):
                await asyncio.sleep(0)
                assert not part_waiter.done()
        for _ in range(3):  # a couple of loop iterations: the waiters wake up at once
            await asyncio.sleep(0)
        assert part_waiter.done() and part_waiter.result() is True
        assert hint_waiter.done() and hint_waiter.result().read() == segmenter.file(hint) is not None
        assert not segment_waiter.done()
        while not segmenter.has(msn, None):
            segmenter.feed(next(packets))
        assert await asyncio.wait_for(segment_waiter, 0.1) is True

        # Requests that cannot be honoured: 400 (too far ahead), timeouts, parts that will never come.
        current = segmenter.current_segment
        segmenter.check_blocking_request(current.msn + 2, None)
        with pytest.raises(BadBlockingRequest):
            segmenter.check_blocking_request(current.msn + 3, None)
        segmenter.check_blocking_request(current.msn, len(current.parts) + segmenter.advance_part_limit - 1)
        with pytest.raises(BadBlockingRequest):
            segmenter.check_blocking_request(current.msn, len(current.parts) + segmenter.advance_part_limit)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await segmenter.wait_for(current.msn + 2, None, timeout=0.05) is False
        assert loop.time() - started < 1
        assert await segmenter.wait_for_file(f"part_0_0_99_video_{segmenter.session}_llhls.m4s", 5) is None
        assert await segmenter.wait_for_file("part_0_1_0_video_0badcafe_llhls.m4s", 5) is None
        assert loop.time() - started < 1
        late = asyncio.create_task(segmenter.wait_for(current.msn + 1, None, timeout=10))
        await asyncio.sleep(0)
        segmenter.finish()  # the end answers every waiter
        assert await asyncio.wait_for(late, 0.1) is True

    asyncio.run(main())


# --- packager and HTTP ----------------------------------------------------------------------------------


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
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    return {stream["codec_type"]: stream for stream in json.loads(stdout)["streams"]}


class LlHlsServer(NamedTuple):
    registry: StreamRegistry
    hls: HlsPackager
    llhls: LlHlsPackager
    server: MediaHttpServer
    base: str  # the stream's URL folder
    stream: LiveStream


async def start_llhls_server() -> LlHlsServer:
    """A started media HTTP server packaging HLS and LL-HLS for `config()`, and the live stream ``KEY`` on it."""
    registry = StreamRegistry()
    control = StaticControlPlane([config()])
    hls = HlsPackager.for_control_plane(registry, control)
    llhls = LlHlsPackager.for_control_plane(registry, control)
    llhls.attach()
    server = MediaHttpServer(registry, control, hls, "127.0.0.1", 0, llhls=llhls)
    await server.start()
    stream = registry.open(KEY, "rtmp", "127.0.0.1")
    return LlHlsServer(registry, hls, llhls, server, f"http://127.0.0.1:{server.port}/app/stream", stream)


def test_llhls_over_http(av_packets: list[MediaPacket], tmp_path: Path) -> None:
    assert shutil.which("ffprobe"), "ffprobe (Debian's ffmpeg package) is required"

    async def main() -> None:
        registry, hls, llhls, server, base, stream = await start_llhls_server()
        feeder = asyncio.create_task(push_packets(stream, av_packets, realtime=True, speed=3.0))
        try:
            async with aiohttp.ClientSession() as http:
                # Live, nothing packaged yet: the master playlist waits for the first part.
                async with http.get(f"{base}/llhls.m3u8") as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"] == "application/vnd.apple.mpegurl"
                    assert response.headers["Access-Control-Allow-Origin"] == "*"
                    master = m3u8.loads(await response.text())
                variant = master.playlists[0]
                assert variant.uri == "chunklist_0_video_llhls.m3u8"
                assert variant.stream_info.codecs == "avc1.64001e,mp4a.40.2"
                assert variant.stream_info.resolution == (640, 360) and variant.stream_info.bandwidth > 0

                async with http.get(f"{base}/{variant.uri}") as response:
                    assert response.status == 200 and "no-cache" in response.headers["Cache-Control"]
                    playlist = m3u8.loads(await response.text())
                hint = playlist.preload_hint.uri
                msn, part = map(int, re.fullmatch(r"part_0_(\d+)_(\d+)_video_[0-9a-f]+_llhls\.m4s", hint).groups())

                # Blocking reload and the preload hint's part, both answered once the part is complete.
                async def fetch(url: str) -> tuple[int, str, bytes]:
                    async with http.get(url) as response:
                        return response.status, response.headers["Content-Type"], await response.read()

                loop = asyncio.get_running_loop()
                started = loop.time()
                (status, kind, body), (part_status, part_kind, part_body) = await asyncio.gather(
                    fetch(f"{base}/{variant.uri}?_HLS_msn={msn}&_HLS_part={part}"), fetch(f"{base}/{hint}")
                )
                assert loop.time() - started < 2
                assert status == 200 and kind == "application/vnd.apple.mpegurl"
                assert f'URI="{hint}"' in body.decode()
                assert part_status == 200 and part_kind == "video/mp4" and walk(part_body)[0][0] == b"moof"

                for query in ("_HLS_part=1", "_HLS_msn=abc", "_HLS_msn=1&_HLS_part=x", f"_HLS_msn={msn + 10}"):
                    async with http.get(f"{base}/{variant.uri}?{query}") as response:
                        assert response.status == 400, query
                        assert response.headers["Access-Control-Allow-Origin"] == "*"
                for path in (
                    f"{base}/chunklist_1_video_llhls.m3u8",
                    f"{base}/part_0_0_99_video_0badcafe_llhls.m4s",
                    f"http://127.0.0.1:{server.port}/app/nostream/llhls.m3u8",
                    f"http://127.0.0.1:{server.port}/otherapp/stream/llhls.m3u8",
                ):
                    async with http.get(path) as response:
                        assert response.status == 404, path

                # A client without LL-HLS support (ffmpeg) needs a complete segment: block until segment 0 is.
                async with http.get(f"{base}/{variant.uri}?_HLS_msn=0") as response:
                    assert response.status == 200 and "#EXTINF:" in await response.text()
                live = await ffprobe_url(f"{base}/llhls.m3u8")
                assert live["video"]["codec_name"] == "h264" and (live["video"]["width"], live["video"]["height"]) == (
                    640,
                    360,
                )
                assert live["audio"]["codec_name"] == "aac"
                # Two LL-HLS viewers from 127.0.0.1: this client and ffprobe (another User-Agent).
                assert stream.counters.connections["llhls"] == 2 and server.viewers.count(stream, "llhls") == 2
                assert stream.counters.connections.get("hls", 0) == 0

                # The publisher leaves: the playlist ends, and everything can be read back.
                await feeder
                registry.close(stream)
                for _ in range(100):
                    if llhls.get(KEY).ended:
                        break
                    await asyncio.sleep(0.01)
                async with http.get(f"{base}/{variant.uri}") as response:
                    ended = m3u8.loads(await response.text())
                assert ended.is_endlist and len(ended.segments) == 5
                media = b""
                for uri in [ended.segments[0].init_section.uri] + [s.uri for s in ended.segments]:
                    async with http.get(f"{base}/{uri}") as response:
                        assert response.status == 200 and response.headers["Content-Type"] == "video/mp4"
                        media += await response.read()
                path = tmp_path / "fetched.mp4"
                path.write_bytes(media)
                streams = ffprobe(path)
                assert (int(streams["video"]["nb_read_frames"]), int(streams["audio"]["nb_read_frames"])) == counts(
                    av_packets
                )
                assert stream.counters.total_bytes_out >= len(media)
        finally:
            feeder.cancel()
            await server.stop()
            await llhls.close()
            await hls.close()
        assert stream.counters.connections["llhls"] == 0

    asyncio.run(main())


def test_packager_lifecycle(av_packets: list[MediaPacket]) -> None:
    async def main() -> None:
        registry = StreamRegistry()
        packager = LlHlsPackager(registry, lambda key: config() if key.app == "app" else None, linger=0.1)
        packager.attach()
        stream = registry.open(KEY, "rtmp")
        other = registry.open(StreamKey("default", "unknown", "stream"), "rtmp")
        await push_packets(stream, av_packets, realtime=False)
        segmenter = await packager.wait_ready(KEY, 1)
        assert segmenter is not None and segmenter.stream is stream and segmenter.playlist() is not None
        assert await packager.wait_ready(other.key, 1) is None
        registry.close(stream)
        await asyncio.sleep(0.02)
        assert segmenter.ended and b"#EXT-X-ENDLIST" in segmenter.playlist()
        assert packager.get(KEY) is segmenter
        # A new publication under the same name: a new session, with new file names.
        again = registry.open(KEY, "rtmp")
        await push_packets(again, av_packets[:80], realtime=False)
        fresh = await packager.wait_ready(KEY, 1)
        assert fresh is not segmenter and fresh.session != segmenter.session
        registry.close(again)
        await asyncio.sleep(0.2)  # linger
        assert packager.get(KEY) is None and packager.keys() == []
        await packager.close()

    asyncio.run(main())


def test_blocking_reload_and_preload_hint_over_http_answer_when_the_part_is_complete_with_cache_headers(
    av_packets: list[MediaPacket],
) -> None:
    """A player blocked on the next part (playlist with ``_HLS_msn``/``_HLS_part``, and the preload hint's part)
    gets its answer within a few milliseconds of the part being cut, with the Cache-Control a cache tier needs:
    parts immutable, the blocking answer briefly cacheable (same URL, same answer), the plain playlist revalidated,
    errors short-lived or not stored. The engine counts the requests by route."""

    async def main() -> None:
        registry, hls, llhls, server, base, stream = await start_llhls_server()
        packets = iter(av_packets)
        loop = asyncio.get_running_loop()
        try:
            async with aiohttp.ClientSession() as http:
                await push_packets(stream, [next(packets) for _ in range(40)], realtime=False)
                segmenter = llhls.get(KEY)
                for _ in range(100):
                    if segmenter.playlist() is not None:
                        break
                    await asyncio.sleep(0.01)
                async with http.get(f"{base}/{segmenter.chunklist_name}") as response:
                    assert response.status == 200 and response.headers["Cache-Control"] == "no-cache"
                    assert response.headers["Access-Control-Allow-Origin"] == "*"
                async with http.get(f"{base}/llhls.m3u8") as response:
                    assert response.status == 200 and response.headers["Cache-Control"] == "public, max-age=1"
                for cycle in range(4):
                    current = segmenter.current_segment
                    msn, part = current.msn, len(current.parts)
                    hint = f"part_0_{msn}_{part}_video_{segmenter.session}_llhls.m4s"
                    answered: dict[str, float] = {}

                    async def fetch(
                        url: str, label: str, answered: dict[str, float] = answered
                    ) -> tuple[int, dict, bytes]:
                        async with http.get(url) as response:
                            body = await response.read()
                            answered[label] = loop.time()
                            return response.status, dict(response.headers), body

                    playlist_request = asyncio.create_task(
                        fetch(f"{base}/{segmenter.chunklist_name}?_HLS_msn={msn}&_HLS_part={part}", "playlist")
                    )
                    part_request = asyncio.create_task(fetch(f"{base}/{hint}", "part"))
                    await asyncio.sleep(0.2)
                    assert not playlist_request.done() and not part_request.done(), cycle
                    while not segmenter.has(msn, part):  # feed until the part is cut
                        packet = next(packets)
                        stream.push(packet)
                        await asyncio.sleep(0)
                    cut = loop.time()
                    (status, headers, body), (part_status, part_headers, part_body) = await asyncio.gather(
                        playlist_request, part_request
                    )
                    assert status == 200 and f'URI="{hint}"' in body.decode()
                    assert headers["Cache-Control"] == "public, max-age=2"
                    assert part_status == 200 and part_body == segmenter.file(hint)
                    assert part_headers["Cache-Control"] == "public, max-age=31536000, immutable"
                    assert max(answered.values()) - cut < 0.05, (cycle, answered, cut)
                for query, status, cache in (
                    ("_HLS_part=1", 400, "no-store"),
                    (f"_HLS_msn={segmenter.current_segment.msn + 10}", 400, "no-store"),
                ):
                    async with http.get(f"{base}/{segmenter.chunklist_name}?{query}") as response:
                        assert (response.status, response.headers["Cache-Control"]) == (status, cache), query
                async with http.get(f"{base}/part_0_0_99_video_0badcafe_llhls.m4s") as response:
                    assert response.status == 404 and response.headers["Cache-Control"] == "public, max-age=1"
                assert server.requests["llhls_chunklist"] == 1 + 4 + 2
                assert server.requests["llhls_file"] == 4 + 1 and server.requests["llhls"] == 1
        finally:
            await server.stop()
            await llhls.close()
            await hls.close()

    asyncio.run(main())
