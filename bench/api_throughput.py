"""API throughput with `make run`'s defaults while an engine carries live streams, measured with wrk
beside the floor: a bare Django view on the same server setup in the same run.

The platform is started as `make run` starts it: scripts/run_platform.py (its API processes, one per
CPU unless STREAMHUB_API_PROCESSES says otherwise, engine, workers, beat) on free ports.

Prints requests per second and latency percentiles at ``--connections`` concurrent clients for
``GET /bench/bare`` (the floor), ``GET /v1/vhosts`` (OME) and ``POST /rest-api/stream/find_all`` (WCS),
and the CPU time the API processes spent per request (user + system, from /proc): unlike requests per
second, it hardly depends on what else the machine runs, so runs on a shared machine compare.
The streams are ffmpeg publishers copying a short clip in a loop (no encoding: the CPU is the API's).

    .venv/bin/python bench/api_throughput.py [--connections 50] [--seconds 10] [--streams 10]
                                             [--only find_all] [--profile DIR]

``--profile DIR`` records each API process with py-spy (as root) during each API row, into
``DIR/<row>-<pid>.txt`` (collapsed stacks, for flamegraph.pl or speedscope).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "streamhub.settings")  # the test fixtures read settings

from tests.integration.conftest import LiveStreamHub, _answers, free_port, redis_answers, wait_for  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from rtmp_hls import publishers as rtmp_publishers  # noqa: E402

from tests.integration.test_run_platform import engine_answers  # noqa: E402

OME_AUTH = "Basic b21lLWFjY2Vzcy10b2tlbg=="  # the development token "ome-access-token"
TEST_ONLY_SETTINGS = (
    "STREAMHUB_ENGINE_HEARTBEAT",
    "STREAMHUB_ENGINE_PROCESSES",
    "STREAMHUB_JOB_LEASE",
    "STREAMHUB_JOB_RECOVERY_INTERVAL",
)
ROWS = ("nginx", "bare", "vhosts", "find_all")
POST_SCRIPT = 'wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n'


def start_streams(hub: LiveStreamHub, folder: Path, count: int) -> list[subprocess.Popen]:
    clip = folder / "clip.flv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25", "-f", "lavfi",
         "-i", "sine=frequency=440:sample_rate=48000", "-t", "10", "-c:v", "libx264", "-preset", "ultrafast",
         "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", str(clip)],
        check=True,
    )  # fmt: skip
    publishers = rtmp_publishers(f"{hub.rtmp}/app", [f"bench{index}" for index in range(count)], clip)
    wait_for(lambda: len(hub.api("GET", "/v1/vhosts/default/apps/app/streams").json()["response"]) >= count, 60)
    return publishers


def start_supervised(hub: LiveStreamHub) -> None:
    """scripts/run_platform.py (`make run`) on the hub's ports; returns once the API and engine answer."""
    hub.env.update(
        {
            "STREAMHUB_API_HOST": "127.0.0.1",
            "STREAMHUB_API_PORT": str(hub.port),
            "STREAMHUB_RTMP_HOST": "127.0.0.1",
            "STREAMHUB_RTMP_PORT": str(hub.rtmp_port),
            "STREAMHUB_MEDIA_HTTP_HOST": "127.0.0.1",
            "STREAMHUB_MEDIA_HTTP_PORT": str(hub.media_port),
            "STREAMHUB_MEDIA_HTTP_UPSTREAM_PORT": str(free_port()),  # the engine's, behind `make run`'s nginx
            # The floor's URL map: StreamHub's plus /bench/bare (bench/api_floor).
            "DJANGO_SETTINGS_MODULE": "bench.api_floor.settings",
        }
    )
    # `make run`'s own engine heartbeat, worker processes and job leases, not the test platform's quicker ones.
    for test_setting in TEST_ONLY_SETTINGS:
        hub.env.pop(test_setting, None)
    hub._spawn("supervisor", [sys.executable, "scripts/run_platform.py"])
    log = lambda: hub.log("supervisor")[-3000:]  # noqa: E731
    wait_for(lambda: _answers(f"{hub.url}/bench/bare"), 300, log)
    # The engine's own page (through `make run`'s nginx, which answers 502 until the engine is up).
    wait_for(lambda: engine_answers(hub), 300, log)
    processes = int(os.environ.get("STREAMHUB_API_PROCESSES") or os.cpu_count() or 1)
    # Every API process answers (each has its own socket): a few requests per process reach them all.
    wait_for(lambda: all(_answers(f"{hub.url}/bench/bare") for _ in range(4 * processes)), 60, log)


def start_nginx(folder: Path) -> tuple[subprocess.Popen, str]:
    """The reference: nginx answering the floor's JSON (one worker per CPU, like the API processes)."""
    port = free_port()
    config = folder / "nginx.conf"
    config.write_text(f"""
daemon off;
worker_processes auto;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{{"ok": true}}'; }}
  }}
}}
""")
    process = subprocess.Popen(["nginx", "-c", str(config), "-p", str(folder)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/bench/bare"
    wait_for(lambda: _answers(url), 10)
    return process, url


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes ``pids`` so far (/proc/PID/stat, fields 14 and 15)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def profilers(pids: list[int], seconds: int, folder: Path, row: str) -> list[subprocess.Popen]:
    """py-spy sampling each of ``pids`` for ``seconds`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    py_spy = str(Path(sys.executable).parent / "py-spy")
    return [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "--format",
                "raw",
                "--rate",
                "200",
                "--duration",
                str(seconds),
                "--pid",
                str(pid),
                "--output",
                str(folder / f"{row}-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]


def wrk(
    url: str,
    connections: int,
    seconds: int,
    *extra: str,
    pids: list[int] | None = None,
    profile: tuple[Path, str] | None = None,
) -> dict[str, str]:
    """wrk's figures; with ``pids``, also the CPU milliseconds those processes spent per request
    (with ``profile`` (folder, row name), py-spy records them meanwhile)."""
    pids = pids or []
    spies = profilers(pids, seconds, *profile) if profile and pids else []
    cpu_before = cpu_seconds(pids)
    result = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency", *extra, url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    for spy in spies:
        spy.wait()
    out = result.stdout
    figures = {"rps": re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)}
    for percentile in ("50%", "99%"):
        figures[percentile] = re.search(rf"^\s+{percentile}\s+(\S+)", out, re.M).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non-2xx"] = errors.group(1) if errors else "0"
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    cpu = cpu_seconds(pids) - cpu_before
    figures["cpu"] = f"{1000 * cpu / requests:.2f}" if pids and requests else "-"
    figures["load"] = f"{os.getloadavg()[0]:.1f}"
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--only", choices=ROWS, action="append", help="measure only these rows (repeatable)")
    parser.add_argument("--profile", type=Path, help="folder for py-spy profiles of the API processes (needs root)")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        assert shutil.which(tool), f"{tool} is missing: `make bench` installs it"
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert redis_answers(redis_url), f"no Redis at {redis_url}"
    folder = Path(tempfile.mkdtemp(prefix="api-throughput-"))
    hub = LiveStreamHub(folder, redis_url)
    publishers: list[subprocess.Popen] = []
    nginx = None
    try:
        start_supervised(hub)
        publishers = start_streams(hub, folder, args.streams)
        post = folder / "post.lua"
        post.write_text(POST_SCRIPT)
        time.sleep(2)
        load_average = os.getloadavg()[0]  # the machine's load from others, before wrk's
        load = (args.connections, args.seconds)
        # The API processes now serving (the last start of each).
        api = dict(re.findall(r"started (api-\d+) \(pid (\d+)\)", hub.log("supervisor")))
        pids = [int(pid) for pid in api.values()]
        nginx, nginx_url = start_nginx(folder)

        def measure_api(row: str, path: str, *extra: str) -> dict[str, str]:
            profile = (args.profile, row) if args.profile else None
            return wrk(f"{hub.url}{path}", *load, *extra, pids=pids, profile=profile)

        runs = {
            "nginx": ("nginx: the same JSON (reference)", lambda: wrk(nginx_url, *load)),
            "bare": ("GET /bench/bare (floor)", lambda: measure_api("bare", "/bench/bare")),
            "vhosts": (
                "GET /v1/vhosts",
                lambda: measure_api("vhosts", "/v1/vhosts", "-H", f"Authorization: {OME_AUTH}"),
            ),
            "find_all": (
                "POST /rest-api/stream/find_all",
                lambda: measure_api("find_all", "/rest-api/stream/find_all", "-s", str(post)),
            ),
        }
        rows = [(name, measure()) for key, (name, measure) in runs.items() if not args.only or key in args.only]
        print(f"\n`make run` (scripts/run_platform.py: {len(set(api))} Daphne API processes on one port, DEBUG off), "
              f"{args.connections} connections, {args.seconds} s each, {args.streams} live streams on the engine, "
              f"{os.cpu_count()} CPUs, load average before: {load_average:.1f}")  # fmt: skip
        columns = ("rps", "50%", "99%", "non-2xx", "cpu", "load")
        widths = (9, 9, 9, 8, 15, 10)
        heads = ("req/s", "p50", "p99", "non-2xx", "API CPU ms/req", "load after")
        print(f"{'request':34}", *(f"{head:>{width}}" for head, width in zip(heads, widths, strict=True)))
        for name, figures in rows:
            print(f"{name:34}", *(f"{figures[key]:>{width}}" for key, width in zip(columns, widths, strict=True)))
    finally:
        if nginx is not None:
            nginx.terminate()  # (SIGKILL would leave its workers running, holding our stdout)
            nginx.wait()
        for publisher in publishers:
            publisher.kill()
            publisher.wait()
        hub.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
