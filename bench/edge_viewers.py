"""What viewers cost an origin when they watch through edges: CPU of the origin and of two edges with
0, 100 and 500 simulated HLS/LL-HLS viewers spread over the edges, without and with the nginx cache
tier (deploy/nginx/streamhub-media-cache.conf, one nginx in front of each edge), beside the same
viewers on the origin itself (the reference, measured in the same run).

Three engine processes (the media engine as `manage.py runengine` runs it, with a static control plane:
no database): an origin that ffmpeg publishes a 640x360 H.264 + AAC test pattern to, and two edges whose
`locate` names the origin, so that each edge pulls the stream once over RTMP (a mirror,
`media_engine/relay/mirror.py`) for all its viewers. A viewer is an asyncio loop that plays HLS
(``ts:playlist.m3u8``: reloads every second) or LL-HLS (``llhls.m3u8``, every other viewer: its first
media playlist with blocking reloads of the next part) and fetches every segment or part it has not
fetched yet, as a player does. CPU is read from /proc for each engine
process and each nginx (its master and worker) over the measuring window (percent of one core); the
requests that went through a cache tier to its edge are counted from nginx's access log
(``$upstream_addr`` set: a miss, an expired playlist or a plain LL-HLS playlist, never a collapsed wait).

    .venv/bin/python bench/edge_viewers.py [--viewers 0,100,500] [--seconds 20]

The machine is shared: compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hls_viewers import HINT, cache_tier_config, free_port, start_nginx  # noqa: E402

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
        return cpu_seconds_of(self.process.pid)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (its own, not its children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class CacheTier:
    """Debian's nginx with the shipped cache tier configuration in front of one edge."""

    def __init__(self, folder: Path, edge: Engine) -> None:
        folder.mkdir()
        folder.chmod(0o755)
        self.port = free_port()
        self.log = folder / "upstream.log"
        config = cache_tier_config(folder, self.port, edge.http_port).replace(
            "access_log off;",
            f"log_format upstream '$upstream_addr'; access_log {self.log} upstream buffer=64k flush=1s;",
        )
        self.process = start_nginx(folder, config)
        self.media = f"http://127.0.0.1:{self.port}/app"
        deadline = time.monotonic() + 10
        while not self._workers() and time.monotonic() < deadline:
            time.sleep(0.1)

    def _workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def cpu_seconds(self) -> float:
        total = cpu_seconds_of(self.process.pid)
        for pid in self._workers():
            try:
                total += cpu_seconds_of(pid)
            except FileNotFoundError:  # a worker replaced meanwhile
                pass
        return total

    def upstream_requests(self) -> int:
        if not self.log.exists():
            return 0
        return sum(1 for line in self.log.read_text().splitlines() if line.strip() not in ("", "-"))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def publish(origin: Engine, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-t", str(seconds), "-f", "flv", f"rtmp://127.0.0.1:{origin.rtmp_port}/app/cam"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def viewer(http: aiohttp.ClientSession, playlist: str, until: float, stats: dict) -> None:
    """Load ``playlist`` and fetch what is new, as a player does: HLS reloads its media playlist every
    second; LL-HLS plays the master's first media playlist with blocking reloads of the next part
    (``_HLS_msn``/``_HLS_part`` from the preload hint), as LL-HLS players do."""
    seen: set[str] = set()
    blocking = ""  # the next part's blocking-reload query (LL-HLS)
    while time.monotonic() < until:
        try:
            async with http.get(playlist + blocking) as answer:
                text = await answer.text()
                if answer.status != 200:
                    stats["errors"] += 1
                    blocking = ""
                    await asyncio.sleep(1)
                    continue
            lines = text.splitlines()
            if "#EXT-X-STREAM-INF" in text:  # a master playlist: its first media playlist
                playlist = urljoin(playlist, next(line for line in lines if line and not line.startswith("#")))
                continue
            uris = [line for line in lines if line and not line.startswith("#")]
            uris += [part.split('URI="', 1)[1].split('"', 1)[0] for part in lines if "#EXT-X-PART:" in part]
            for uri in uris[-3:]:
                url = urljoin(playlist, uri)
                if url in seen:
                    continue
                seen.add(url)
                async with http.get(url) as media:
                    stats["bytes"] += len(await media.read())
                    stats["requests"] += 1
            hint = HINT.search(text)
            blocking = f"?_HLS_msn={hint[2]}&_HLS_part={hint[3]}" if hint else ""
        except (aiohttp.ClientError, TimeoutError):  # refused, reset, or too slow on a loaded machine
            stats["errors"] += 1
            blocking = ""
        if not blocking:
            await asyncio.sleep(1.0)


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


def measure(processes: list, bases: list[str], viewers: int, seconds: float, caches=()) -> tuple[list[float], dict]:
    """CPU % of each of ``processes`` (engines and cache tiers) while ``viewers`` watch from ``bases``;
    the stats count the requests that went through ``caches`` to the edges as ``upstream``."""
    asyncio.run(watch(bases, viewers, 4.0))  # warm up: mirrors and packagers start
    time.sleep(1.2)  # nginx's access log buffer flushed
    before = [process.cpu_seconds() for process in processes]
    upstream_before = sum(cache.upstream_requests() for cache in caches)
    started = time.monotonic()
    stats = asyncio.run(watch(bases, viewers, seconds))
    elapsed = time.monotonic() - started
    cpu = [100 * (process.cpu_seconds() - b) / elapsed for process, b in zip(processes, before, strict=True)]
    time.sleep(1.2)
    stats["upstream"] = sum(cache.upstream_requests() for cache in caches) - upstream_before
    return cpu, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="0,100,500")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    counts = [int(count) for count in args.viewers.split(",")]
    origin = Engine("origin")
    edges = [Engine("edge-a", origin.rtmp_port), Engine("edge-b", origin.rtmp_port)]
    engines = [origin, *edges]
    folder = Path(tempfile.mkdtemp(prefix="edge-viewers-"))
    folder.chmod(0o755)
    caches = [CacheTier(folder / edge.name, edge) for edge in edges]
    publisher = publish(origin, seconds=60 + len(counts) * 3 * (args.seconds + 8))
    try:
        time.sleep(4)
        rows = []
        for count in counts:
            via_edges, edge_stats = measure(engines, [edge.media for edge in edges], count, args.seconds)
            cached, cached_stats = measure([*engines, *caches], [c.media for c in caches], count, args.seconds, caches)
            direct, direct_stats = measure(engines, [origin.media], count, args.seconds)
            rows.append((count, via_edges, edge_stats, cached, cached_stats, direct[0], direct_stats))
        print(f"edge_viewers: {args.seconds:g} s per row, HLS 2 s segments / LL-HLS 0.5 s parts, CPU % of one core")
        print(
            "| viewers | origin CPU (via edges) | edge-a CPU | edge-b CPU | segments+parts/errors (edges) "
            "| origin CPU (via cache tier + edges) | edge-a CPU | edge-b CPU | nginx a + b CPU "
            "| segments+parts/errors (cache tiers) | requests reaching the edges (playlists too) "
            "| reference: origin CPU, same viewers on the origin | segments+parts/errors (origin) |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for count, plain, plain_stats, cached, cached_stats, direct_cpu, direct_stats in rows:
            print(f"| {count} | {plain[0]:.1f} | {plain[1]:.1f} | {plain[2]:.1f} | "
                  f"{plain_stats['requests']}/{plain_stats['errors']} | {cached[0]:.1f} | {cached[1]:.1f} | "
                  f"{cached[2]:.1f} | {cached[3]:.1f} + {cached[4]:.1f} | "
                  f"{cached_stats['requests']}/{cached_stats['errors']} | {cached_stats['upstream']} | "
                  f"{direct_cpu:.1f} | {direct_stats['requests']}/{direct_stats['errors']} |")  # fmt: skip
    finally:
        publisher.kill()
        for cache in caches:
            cache.stop()
        for engine in engines:
            engine.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
