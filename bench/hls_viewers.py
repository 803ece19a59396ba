"""HTTP viewers of one live stream: StreamHub's engine direct, the engine behind `make run`'s nginx front (the
cache tier's configuration, deploy/nginx/streamhub-media-cache.conf, rendered exactly as scripts/media_front.py
renders it for `make run`: the front's token, the viewer log that the engine reads), and, as the reference in the
same run, nginx serving nginx-rtmp's HLS of the same stream (one ffmpeg publishes to both, 640x360@30 H.264 + AAC,
GOP 1 s).

1. wrk (Debian) with ``--connections`` clients for ``--duration`` s on one URL at a time: the HLS playlist, the
   newest HLS segment, an LL-HLS part and an LL-HLS blocking reload (``_HLS_msn``/``_HLS_part`` of a part that
   exists: the blocking path, answered at once); req/s, MB/s and p99 latency.
2. ``--blocked`` (1,000) asyncio LL-HLS clients (in 4 processes) blocked on the next part of the stream, for
   ``--parts`` parts, direct and through the cache: p99 of (answer time - the part's completion in the engine,
   recorded there), which the issue wants at most the part duration + 100 ms. The engine's request counts show what
   the cache saved it.

    .venv/bin/python bench/hls_viewers.py [--duration 5] [--connections 200] [--blocked 1000] [--parts 10]
        [--lock-timeouts 200ms,300ms]  (blocked clients through the front with other proxy_cache_lock_timeouts too)

The engine runs the platform's defaults (LL-HLS parts 0.2 s, segments 6 s; HLS segments 4 s as applications get
them) with its on-demand packaging, in its own process, as `manage.py runengine` runs the node.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.media_front import nginx_command, nginx_main_config, render_cache_tier  # noqa: E402

HLS_SEGMENT = 4.0
HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="(part_0_(\d+)_(\d+)_video_[0-9a-f]+_llhls\.m4s)"')
PART = re.compile(r'#EXT-X-PART:DURATION=[0-9.]+,URI="(part_0_(\d+)_(\d+)_[^"]+)"')

# The engine node (platform defaults), with its request counts on /_counts and the time each LL-HLS part was
# completed (closed by the packager: a blocked request can be answered from then) on /_parts.
ENGINE = """
import asyncio, sys, time
sys.path.insert(0, {root!r})
from aiohttp import web
from pathlib import Path
from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.hls import llhls
from media_engine.http.front import WebServerFront
from media_engine.node import EngineNode, NodeAddresses

completed = {{}}
close_part = llhls.LlHlsSegmenter._close_part

def timed_close_part(self, end):
    segment = self._current
    close_part(self, end)
    if segment is not None and segment.parts:
        completed.setdefault(segment.parts[-1].name, time.time())
        while len(completed) > 2000:
            del completed[next(iter(completed))]

llhls.LlHlsSegmenter._close_part = timed_close_part

async def main():
    config = ApplicationConfig("default", "app", hls_segment_duration={hls})
    node = EngineNode(StaticControlPlane([config]),
                      NodeAddresses(rtmp_host="127.0.0.1", rtmp_port=0, http_host="127.0.0.1", http_port=0))
    async def counts(request):
        return web.json_response(dict(node.http.requests))
    async def parts(request):
        return web.json_response(completed)
    node.http.add_route("GET", "/_counts", counts)
    node.http.add_route("GET", "/_parts", parts)
    front = WebServerFront({token!r}, Path({log!r}))  # as `make run`'s engine behind its nginx
    front.install(node.http)
    await node.start()
    print("ready", node.rtmp.port, node.http.port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, timeout: float = 10) -> bytes:
    return urllib.request.urlopen(url, timeout=timeout).read()


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


def start_nginx(config: Path) -> subprocess.Popen:
    return subprocess.Popen(nginx_command(config), stderr=subprocess.DEVNULL)


def front_config(folder: Path, port: int, engine_port: int, token: str, lock_timeout: str | None = None) -> Path:
    """`make run`'s front (one worker process, like the reference), with another lock timeout if asked."""
    text = render_cache_tier(
        f"127.0.0.1:{port}", [f"127.0.0.1:{engine_port}"], folder / "cache", front_token=token,
        viewer_log=folder / "viewers.log",
    )  # fmt: skip
    if lock_timeout is not None:
        text, found = re.subn(r"proxy_cache_lock_timeout \S+;", f"proxy_cache_lock_timeout {lock_timeout};", text)
        assert found == 1
    (folder / "cache.conf").write_text(text)
    return nginx_main_config(folder, f"include {folder}/cache.conf;", workers="1")


def nginx_rtmp_config(folder: Path, rtmp_port: int, http_port: int) -> Path:
    hls = folder / "hls"
    hls.mkdir()
    hls.chmod(0o777)
    return nginx_main_config(
        folder,
        f"""server {{ listen 127.0.0.1:{http_port};
    location /app/ {{ alias {hls}/; add_header Cache-Control "max-age=1"; }} }}""",
        workers="1",
        head=f"""load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
rtmp {{ server {{ listen 127.0.0.1:{rtmp_port}; chunk_size 4096;
  application app {{ live on; hls on; hls_path {hls}; hls_fragment {HLS_SEGMENT:g}s; hls_playlist_length 20s; }} }} }}
""",
    )


# --- wrk -------------------------------------------------------------------------------------------------------

UNITS = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def wrk(url: str, duration: float, connections: int) -> tuple[float, float, float, int]:
    """(requests/s, MB/s, p99 ms, non-2xx answers) of wrk on ``url``."""
    result = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", "10s", url],
        capture_output=True, text=True, timeout=duration + 60,
    )  # fmt: skip
    out = result.stdout
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out)[1])
    amount, unit = re.search(r"Transfer/sec:\s+([0-9.]+)(\w+)", out).groups()
    megabytes = float(amount) * UNITS[unit] / 1024**2
    value, unit = re.search(r"99%\s+([0-9.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, megabytes, p99, int(errors[1]) if errors else 0


# --- blocked LL-HLS clients ------------------------------------------------------------------------------------


def blocked_clients(base: str, chunklist: str, clients: int, parts: int, results) -> None:
    """One process of ``clients`` asyncio players, each blocked on the next part ``parts`` times."""
    import aiohttp

    async def player(http: aiohttp.ClientSession, answers: list) -> None:
        async with http.get(f"{base}/{chunklist}") as response:
            playlist = await response.text()
        for _ in range(parts):
            name, msn, index = HINT.search(playlist).groups()
            async with http.get(f"{base}/{chunklist}?_HLS_msn={msn}&_HLS_part={index}") as response:
                playlist = await response.text()
                answers.append((name, time.time(), response.status))

    async def run() -> list:
        answers: list = []
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
            await asyncio.gather(*(player(http, answers) for _ in range(clients)), return_exceptions=True)
        return answers

    results.put(asyncio.run(run()))


def blocked_run(base: str, chunklist: str, engine: str, clients: int, parts: int) -> dict:
    before = json.loads(get(f"{engine}/_counts"))
    queue = multiprocessing.Queue()
    workers = 4
    processes = [
        multiprocessing.Process(target=blocked_clients, args=(base, chunklist, clients // workers, parts, queue))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    answers = [answer for _ in processes for answer in queue.get(timeout=300)]
    for process in processes:
        process.join(timeout=30)
    time.sleep(0.5)
    completed = json.loads(get(f"{engine}/_parts"))
    after = json.loads(get(f"{engine}/_counts"))
    delays = sorted(at - completed[name] for name, at, status in answers if status == 200 and name in completed)
    failed = sum(1 for _, _, status in answers if status != 200)
    distinct = {name for name, _, _ in answers}
    # (each client's first, plain, playlist request always reaches the engine: not counted)
    upstream = after.get("llhls_chunklist", 0) - before.get("llhls_chunklist", 0) - clients // workers * workers
    return {
        "answers": len(answers),
        "failed": failed,
        "expected": clients // workers * workers * parts,
        "p50": delays[len(delays) // 2] * 1000 if delays else float("nan"),
        "p99": delays[int(0.99 * (len(delays) - 1))] * 1000 if delays else float("nan"),
        "max": delays[-1] * 1000 if delays else float("nan"),
        "parts": len(distinct),
        "engine_requests": upstream,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each wrk run (0: no wrk)")
    parser.add_argument("--connections", type=int, default=200, help="wrk connections")
    parser.add_argument("--blocked", type=int, default=1000, help="LL-HLS clients blocked on the next part")
    parser.add_argument("--parts", type=int, default=10, help="parts each blocked client waits for")
    parser.add_argument("--lock-timeouts", default="", help="more proxy_cache_lock_timeout values to try (comma)")
    args = parser.parse_args()
    for tool in ("wrk", "nginx", "ffmpeg"):
        assert shutil.which(tool), f"{tool} is missing (Debian package {tool})"
    from media_engine.control import ApplicationConfig

    part_duration = ApplicationConfig("default", "app").llhls_part_duration

    folder = Path(tempfile.mkdtemp(prefix="hls-viewers-"))
    folder.chmod(0o755)
    processes: list[subprocess.Popen] = []
    token = secrets.token_urlsafe(24)
    script = ENGINE.format(root=str(ROOT), hls=HLS_SEGMENT, token=token, log=str(folder / "cache" / "viewers.log"))
    engine = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, engine_rtmp, engine_http = engine.stdout.readline().split()
        cache_port, rtmp_port, rtmp_http = free_port(), free_port(), free_port()
        timeouts = [value for value in args.lock_timeouts.split(",") if value]
        for name in ("cache", "rtmp", *(f"cache-{value}" for value in timeouts)):
            (folder / name).mkdir()
            (folder / name).chmod(0o755)
        processes.append(start_nginx(front_config(folder / "cache", cache_port, int(engine_http), token)))
        variants = []
        for value in timeouts:
            port = free_port()
            config = front_config(folder / f"cache-{value}", port, int(engine_http), token, value)
            processes.append(start_nginx(config))
            variants.append((f"front, lock timeout {value}", f"http://127.0.0.1:{port}/app/viewers"))
        processes.append(start_nginx(nginx_rtmp_config(folder / "rtmp", rtmp_port, rtmp_http)))
        time.sleep(1)
        targets = "|".join(
            f"[f=flv:onfail=ignore]rtmp://127.0.0.1:{port}/app/viewers" for port in (engine_rtmp, rtmp_port)
        )
        encoder = ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30",
                   "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-map", "0:v", "-map", "1:a",
                   "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-b:v", "1500k",
                   "-pix_fmt", "yuv420p", "-c:a", "aac", "-flags", "+global_header", "-f", "tee", targets]  # fmt: skip
        processes.append(subprocess.Popen(encoder, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        direct = f"http://127.0.0.1:{engine_http}/app/viewers"
        cached = f"http://127.0.0.1:{cache_port}/app/viewers"
        reference = f"http://127.0.0.1:{rtmp_http}/app/viewers"
        engine_base = f"http://127.0.0.1:{engine_http}"
        wait_until(lambda: get(f"{direct}/ts:playlist.m3u8").count(b"#EXTINF") >= 3, 60, "3 HLS segments")
        wait_until(lambda: get(f"{reference}.m3u8").count(b"#EXTINF") >= 3, 60, "nginx-rtmp's HLS")
        master = get(f"{direct}/llhls.m3u8").decode()
        chunklist = next(line for line in master.splitlines() if line.startswith("chunklist_"))
        wait_until(lambda: b"#EXTINF" in get(f"{direct}/{chunklist}"), 30, "an LL-HLS segment")

        def newest(playlist: bytes) -> str:
            return [line for line in playlist.decode().splitlines() if line and not line.startswith("#")][-1]

        rows = []

        def measure(what: str, server: str, url: str) -> None:
            rate, megabytes, p99, errors = wrk(url, args.duration, args.connections)
            note = f"  ({errors} non-2xx)" if errors else ""
            rows.append(f"| {what:<22} | {server:<28} | {rate:>9,.0f} | {megabytes:>8.1f} | {p99:>8.1f} |{note}")
            print(rows[-1], flush=True)

        if args.duration > 0:  # (0: the blocked clients only)
            print(f"wrk -t2 -c{args.connections} -d{args.duration:g}s on one URL at a time, {os.cpu_count()} cores:")
            header = "| what                   | server                       |     req/s |     MB/s |  p99 ms |"
            print(header + "\n|---|---|---:|---:|---:|", flush=True)
            for name, base in (("engine direct", direct), ("make run's nginx front", cached)):
                measure("HLS playlist", name, f"{base}/ts:playlist.m3u8")
            measure("HLS playlist", "nginx (nginx-rtmp's HLS)", f"{reference}.m3u8")
            for name, base in (("engine direct", direct), ("make run's nginx front", cached)):
                measure("newest HLS segment", name, f"{base}/{newest(get(f'{direct}/ts:playlist.m3u8'))}")
            reference_segment = newest(get(f"{reference}.m3u8"))
            measure(
                "newest HLS segment", "nginx (nginx-rtmp's HLS)", f"{reference.rsplit('/', 1)[0]}/{reference_segment}"
            )
            for name, base in (("engine direct", direct), ("make run's nginx front", cached)):
                part, msn, index = PART.findall(get(f"{direct}/{chunklist}").decode())[-1]
                measure("LL-HLS part", name, f"{base}/{part}")
            for name, base in (("engine direct", direct), ("make run's nginx front", cached)):
                part, msn, index = PART.findall(get(f"{direct}/{chunklist}").decode())[-1]
                measure("LL-HLS blocking reload", name, f"{base}/{chunklist}?_HLS_msn={msn}&_HLS_part={index}")

        print(
            f"\n{args.blocked} LL-HLS clients blocked on the next part ({args.parts} parts each, part target "
            f"{part_duration:g} s; bound: part + 100 ms = {part_duration * 1000 + 100:.0f} ms at p99):",
            flush=True,
        )
        print("| path | answers | p50 ms | p99 ms | max ms | parts | engine blocking reloads per part | within bound |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for name, base in (("engine direct", direct), ("make run's nginx front", cached), *variants):
            result = blocked_run(base, chunklist, engine_base, args.blocked, args.parts)
            within = result["p99"] <= part_duration * 1000 + 100 and not result["failed"]
            print(
                f"| {name} | {result['answers']}/{result['expected']} ({result['failed']} failed) | "
                f"{result['p50']:.0f} | {result['p99']:.0f} | {result['max']:.0f} | {result['parts']} | "
                f"{result['engine_requests'] / max(1, result['parts']):.1f} | {'yes' if within else 'NO'} |",
                flush=True,
            )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        os.killpg(engine.pid, signal.SIGTERM)
        engine.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
