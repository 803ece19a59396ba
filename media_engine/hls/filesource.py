"""Media files as `MediaPacket`s: a stand-in publisher for tests, benchmarks and tools.

`read_packets` demuxes a file with PyAV (FLV gives exactly what RTMP carries: AVCC H.264 with
an avcC record as extradata, raw AAC with an AudioSpecificConfig); `push_packets` feeds them to
a `LiveStream`, in real time or as fast as possible; `make_test_flv` has ffmpeg generate a
test pattern FLV.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av

from media_engine.packets import MediaPacket, TrackKind
from media_engine.registry import LiveStream

_KINDS = {"video": TrackKind.VIDEO, "audio": TrackKind.AUDIO}


def _ms(value: int, time_base: Fraction) -> int:
    return round(value * time_base * 1000)


def read_packets(path: str | Path) -> list[MediaPacket]:
    """All H.264/AAC packets of a file in decoding order, preceded by the configuration records."""
    packets: list[MediaPacket] = []
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type in _KINDS and s.codec_context.name in ("h264", "aac")]
        for stream in sorted(streams, key=lambda s: s.type != "video"):
            extradata = stream.codec_context.extradata
            if extradata:
                kind = _KINDS[stream.type]
                packets.append(MediaPacket(kind, stream.codec_context.name, 0, 0, bytes(extradata), True, True))
        for packet in container.demux(streams):
            if packet.size == 0 or packet.dts is None:
                continue
            stream = packet.stream
            time_base = packet.time_base or stream.time_base
            dts = _ms(packet.dts, time_base)
            pts = _ms(packet.pts, time_base) if packet.pts is not None else dts
            packets.append(
                MediaPacket(
                    _KINDS[stream.type],
                    stream.codec_context.name,
                    dts,
                    pts,
                    bytes(packet),
                    keyframe=bool(packet.is_keyframe) or stream.type == "audio",
                )
            )
    return packets


async def push_packets(
    stream: LiveStream, packets: Iterable[MediaPacket], *, realtime: bool = True, speed: float = 1.0
) -> None:
    """Push packets into ``stream`` (paced by their DTS if ``realtime``), without ending it."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    first: int | None = None
    for packet in packets:
        if realtime and not packet.config:
            if first is None:
                first = packet.dts
            delay = start + (packet.dts - first) / 1000 / speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        stream.counters.received(len(packet.payload))
        stream.push(packet)
        if not realtime:
            await asyncio.sleep(0)


def make_test_flv(
    path: str | Path,
    *,
    duration: float = 10.0,
    video: bool = True,
    audio: bool = True,
    size: str = "640x360",
    fps: int = 25,
    gop: int = 50,
    video_bitrate: str | None = None,
) -> Path:
    """Have ffmpeg write a test pattern (testsrc + sine) H.264/AAC FLV; returns its path."""
    path = Path(path)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    if video:
        cmd += ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    cmd += ["-t", str(duration)]
    if video:
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", str(gop)]
        cmd += ["-keyint_min", str(gop), "-sc_threshold", "0"]
        if video_bitrate:
            cmd += ["-b:v", video_bitrate, "-maxrate", video_bitrate, "-bufsize", video_bitrate]
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "128k", "-ac", "2"]
    cmd += ["-f", "flv", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path
