"""API throughput with `make run`'s defaults (one Daphne process) while an engine carries live
streams, measured with wrk beside the floor: a bare Django view on the same server in the same run.

Prints requests per second and latency percentiles at ``--connections`` concurrent clients for
``GET /bench/bare`` (the floor), ``GET /v1/vhosts`` (OME) and ``POST /rest-api/stream/find_all`` (WCS).
The streams are ffmpeg publishers copying a short clip in a loop (no encoding: the CPU is the API's).

    .venv/bin/python bench/api_throughput.py [--connections 50] [--seconds 10] [--streams 10]
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

from tests.integration.conftest import LiveStreamHub, redis_answers, wait_for  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from rtmp_hls import publishers as rtmp_publishers  # noqa: E402

OME_AUTH = "Basic b21lLWFjY2Vzcy10b2tlbg=="  # the development token "ome-access-token"
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


def wrk(url: str, connections: int, seconds: int, *extra: str) -> dict[str, str]:
    result = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency", *extra, url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = result.stdout
    figures = {"rps": re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)}
    for percentile in ("50%", "99%"):
        figures[percentile] = re.search(rf"^\s+{percentile}\s+(\S+)", out, re.M).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non-2xx"] = errors.group(1) if errors else "0"
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--streams", type=int, default=10)
    args = parser.parse_args()
    assert shutil.which("wrk"), "wrk is missing: `make bench` installs it"
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert redis_answers(redis_url), f"no Redis at {redis_url}"
    folder = Path(tempfile.mkdtemp(prefix="api-throughput-"))
    hub = LiveStreamHub(folder, redis_url)
    hub.env["DJANGO_SETTINGS_MODULE"] = "bench.api_floor.settings"
    hub.start(engine=True)
    publishers: list[subprocess.Popen] = []
    try:
        publishers = start_streams(hub, folder, args.streams)
        post = folder / "post.lua"
        post.write_text(POST_SCRIPT)
        time.sleep(2)
        load = (args.connections, args.seconds)
        rows = [
            ("GET /bench/bare (floor)", wrk(f"{hub.url}/bench/bare", *load)),
            ("GET /v1/vhosts", wrk(f"{hub.url}/v1/vhosts", *load, "-H", f"Authorization: {OME_AUTH}")),
            ("POST /rest-api/stream/find_all", wrk(f"{hub.url}/rest-api/stream/find_all", *load, "-s", str(post))),
        ]
        print(f"\nDaphne (one process, DEBUG off), {args.connections} connections, {args.seconds} s each, "
              f"{args.streams} live streams on the engine, {os.cpu_count()} CPUs")  # fmt: skip
        print(f"{'request':34} {'req/s':>9} {'p50':>9} {'p99':>9} {'non-2xx':>8}")
        for name, figures in rows:
            print(f"{name:34} {figures['rps']:>9} {figures['50%']:>9} {figures['99%']:>9} {figures['non-2xx']:>8}")
    finally:
        for publisher in publishers:
            publisher.kill()
            publisher.wait()
        hub.stop()


if __name__ == "__main__":
    main()
