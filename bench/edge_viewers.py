"""What viewers cost an origin when they watch through edges: CPU of the origin and of two edges with
0, 100 and 500 simulated HLS/LL-HLS viewers spread over the edges, beside the same viewers on the origin
itself (the reference, measured in the same run).

Three engine processes (the media engine as `manage.py runengine` runs it, with a static control plane:
no database): an origin that ffmpeg publishes a 640x360 H.264 + AAC test pattern to, and two edges whose
`locate` names the origin, so that each edge pulls the stream once over RTMP (a mirror,
`media_engine/relay/mirror.py`) for all its viewers. A viewer is an asyncio loop that reloads the HLS
playlist (``ts:playlist.m3u8``) or the LL-HLS playlist (``llhls.m3u8``, every other viewer) and fetches
every segment or part it has not fetched yet, as a player does. CPU is read from /proc for each engine
process over the measuring window (percent of one core).

    .venv/bin/python bench/edge_viewers.py [--viewers 0,100,500] [--seconds 20]

The machine is shared: compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")

ENGINE = """
import asyncio, sys
sys.path.insert(0, {root!r})
from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.node import EngineNode, NodeAddresses
from media_engine.relay.mirror import RemoteSource

ORIGIN_RTMP = {origin_rtmp}

async def locate(key):
    return RemoteSource(f"rtmp://127.0.0.1:{{ORIGIN_RTMP}}/{{key.app}}/{{key.name}}", "origin")

async def main():
    config = ApplicationConfig("default", "app", hls_segment_duration=2, hls_segment_count=5,
                               llhls_part_duration=0.5, llhls_segment_duration=2, llhls_segment_count=10)
    extra = {{"locate": locate, "mirror_linger": 10.0}} if ORIGIN_RTMP else {{}}
    node = EngineNode(StaticControlPlane([config]),
                      NodeAddresses(rtmp_host="127.0.0.1", rtmp_port=0, http_host="127.0.0.1", http_port=0), **extra)
    await node.start()
    print("ready", node.rtmp.port, node.http.port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class Engine:
    def __init__(self, name: str, origin_rtmp: int = 0) -> None:
        self.name = name
        code = ENGINE.format(root=str(ROOT), origin_rtmp=origin_rtmp)
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        words = self.process.stdout.readline().split()
        if not words or words[0] != "ready":
            raise SystemExit(f"{name} did not start")
        self.rtmp_port, self.http_port = int(words[1]), int(words[2])
        self.media = f"http://127.0.0.1:{self.http_port}/app"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def publish(origin: Engine, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-t", str(seconds), "-f", "flv", f"rtmp://127.0.0.1:{origin.rtmp_port}/app/cam"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def viewer(http: aiohttp.ClientSession, playlist: str, until: float, stats: dict) -> None:
    """Reload ``playlist`` and fetch what is new, as a player does (no blocking reloads)."""
    seen: set[str] = set()
    while time.monotonic() < until:
        try:
            async with http.get(playlist) as answer:
                text = await answer.text()
                if answer.status != 200:
                    stats["errors"] += 1
                    await asyncio.sleep(1)
                    continue
            uris = [line for line in text.splitlines() if line and not line.startswith("#")]
            uris += [part.split('URI="', 1)[1].split('"', 1)[0] for part in text.splitlines() if "#EXT-X-PART:" in part]
            for uri in uris[-3:]:
                url = urljoin(playlist, uri)
                if url in seen:
                    continue
                seen.add(url)
                async with http.get(url) as media:
                    stats["bytes"] += len(await media.read())
                    stats["requests"] += 1
        except (aiohttp.ClientError, TimeoutError):  # refused, reset, or too slow on a loaded machine
            stats["errors"] += 1
        await asyncio.sleep(0.5 if "llhls" in playlist else 1.0)


async def watch(bases: list[str], viewers: int, seconds: float) -> dict:
    stats = {"bytes": 0, "requests": 0, "errors": 0}
    if not viewers:
        await asyncio.sleep(seconds)
        return stats
    until = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as http:
        playlists = [
            f"{bases[i % len(bases)]}/cam/{'llhls.m3u8' if i % 2 else 'ts:playlist.m3u8'}" for i in range(viewers)
        ]
        await asyncio.gather(*(viewer(http, playlist, until, stats) for playlist in playlists))
    return stats


def measure(engines: list[Engine], bases: list[str], viewers: int, seconds: float) -> tuple[list[float], dict]:
    asyncio.run(watch(bases, viewers, 4.0))  # warm up: mirrors and packagers start
    before = [engine.cpu_seconds() for engine in engines]
    started = time.monotonic()
    stats = asyncio.run(watch(bases, viewers, seconds))
    elapsed = time.monotonic() - started
    return [100 * (engine.cpu_seconds() - b) / elapsed for engine, b in zip(engines, before, strict=True)], stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="0,100,500")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    counts = [int(count) for count in args.viewers.split(",")]
    origin = Engine("origin")
    edges = [Engine("edge-a", origin.rtmp_port), Engine("edge-b", origin.rtmp_port)]
    engines = [origin, *edges]
    publisher = publish(origin, seconds=60 + len(counts) * 2 * (args.seconds + 6))
    try:
        time.sleep(4)
        rows = []
        for count in counts:
            via_edges, edge_stats = measure(engines, [edge.media for edge in edges], count, args.seconds)
            direct, direct_stats = measure(engines, [origin.media], count, args.seconds)
            rows.append((count, via_edges, edge_stats, direct[0], direct_stats))
        print(f"edge_viewers: {args.seconds:g} s per row, HLS 2 s segments / LL-HLS 0.5 s parts, CPU % of one core")
        print(
            "| viewers | origin CPU (via edges) | edge-a CPU | edge-b CPU | requests/errors (edges) "
            "| reference: origin CPU, same viewers on the origin | requests/errors (origin) |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for count, (origin_cpu, a_cpu, b_cpu), edge_stats, direct_cpu, direct_stats in rows:
            print(f"| {count} | {origin_cpu:.1f} | {a_cpu:.1f} | {b_cpu:.1f} | "
                  f"{edge_stats['requests']}/{edge_stats['errors']} | {direct_cpu:.1f} | "
                  f"{direct_stats['requests']}/{direct_stats['errors']} |")  # fmt: skip
    finally:
        publisher.kill()
        for engine in engines:
            engine.stop()


if __name__ == "__main__":
    main()
