"""RTMP ingest + HLS packaging: StreamHub's engine node beside nginx with its RTMP module, same run.

For N = 1, 10, 50 streams (720p30, ~2.5 Mb/s, published by ffmpeg with `-c copy`), each server
receives the streams for DURATION seconds and packages HLS with the same segment settings. Prints
CPU seconds per stream-second and peak RSS of each server, and whether every segment was produced.

    .venv/bin/python bench/rtmp_hls.py [--streams 1 10 50] [--duration 30]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "bench"
SEGMENT_SECONDS = 4
KEYFRAME_SECONDS = 2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def source_file() -> Path:
    """A 60 s 720p30 H.264 (~2.5 Mb/s CBR, GOP 2 s) + AAC FLV, made once with ffmpeg."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "source-720p30.flv"
    if not path.exists():
        print("encoding the 720p30 source once (about a minute)...", flush=True)
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2", "-t", "60",
             "-c:v", "libx264", "-preset", "veryfast", "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "5000k",
             "-g", str(30 * KEYFRAME_SECONDS), "-keyint_min", str(30 * KEYFRAME_SECONDS), "-sc_threshold", "0",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(path)],
            check=True,
        )  # fmt: skip
    return path


def process_tree(pid: int) -> list[int]:
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            continue
    return total / CLOCK_TICKS


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
            total += int(match.group(1)) if match else 0
        except OSError:
            continue
    return total / 1024


@dataclass
class Result:
    server: str
    streams: int
    cpu_per_stream_second: float
    peak_rss_mb: float
    segments_expected: int
    segments_min: int
    publishers_ok: int


class Server:
    name = ""
    rtmp_port = 0

    def start(self, folder: Path) -> subprocess.Popen: ...

    def segments(self, stream: str) -> int: ...


class NginxRtmp(Server):
    name = "nginx-rtmp"

    def start(self, folder: Path) -> subprocess.Popen:
        self.rtmp_port = free_port()
        self.hls = folder / "hls"
        self.hls.mkdir()
        # nginx's worker runs unprivileged: let it reach and write the HLS folder.
        folder.chmod(0o755)
        self.hls.chmod(0o777)
        config = folder / "nginx.conf"
        config.write_text(f"""
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
rtmp {{
  server {{
    listen 127.0.0.1:{self.rtmp_port};
    chunk_size 4096;
    application app {{
      live on;
      hls on;
      hls_path {self.hls};
      hls_fragment {SEGMENT_SECONDS}s;
      hls_playlist_length {SEGMENT_SECONDS * 5}s;
      hls_cleanup off;
    }}
  }}
}}
""")
        return subprocess.Popen(["nginx", "-c", str(config), "-p", str(folder)], stderr=subprocess.DEVNULL)

    def segments(self, stream: str) -> int:
        return len(list(self.hls.glob(f"{stream}-*.ts")))


class StreamHubEngine(Server):
    name = "StreamHub"

    def start(self, folder: Path) -> subprocess.Popen:
        self.rtmp_port, self.http_port = free_port(), free_port()
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}",
            "STREAMHUB_VAR_DIR": str(folder / "var"),
            "STREAMHUB_CHANNELS_PREFIX": f"bench{os.getpid()}",
            "STREAMHUB_NODE_ID": f"bench-{os.getpid()}",
            "LOG_LEVEL": "WARNING",
        }
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        patch = (
            "from apps.hosting.models import Application as A; a = A.objects.get(name='app'); "
            f"a.publishers['hls'] = {{'segmentDuration': {SEGMENT_SECONDS}, 'segmentCount': 5}}; a.save()"
        )
        subprocess.run([sys.executable, "manage.py", "shell", "-c", patch], cwd=ROOT, env=env, check=True)
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runengine", "--rtmp-host", "127.0.0.1", "--rtmp-port", str(self.rtmp_port),
             "--http-host", "127.0.0.1", "--http-port", str(self.http_port)],
            cwd=ROOT, env=env,
        )  # fmt: skip
        return process

    def segments(self, stream: str) -> int:
        url = f"http://127.0.0.1:{self.http_port}/app/{stream}/ts:playlist.m3u8"
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            return 0
        sequence = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))
        return sequence + text.count("#EXTINF")


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def run(server: Server, streams: int, duration: int, source: Path) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        process = server.start(Path(folder))
        try:
            wait_port(server.rtmp_port)
            publishers = [
                subprocess.Popen(
                    [
                        "ffmpeg",
                        "-v",
                        "error",
                        "-re",
                        "-stream_loop",
                        "-1",
                        "-i",
                        str(source),
                        "-c",
                        "copy",
                        "-t",
                        str(duration),
                        "-f",
                        "flv",
                        f"rtmp://127.0.0.1:{server.rtmp_port}/app/s{index}",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                for index in range(streams)
            ]
            pids = process_tree(process.pid)
            cpu_start = cpu_seconds(pids)
            peak = 0.0
            deadline = time.monotonic() + duration
            while time.monotonic() < deadline:
                time.sleep(1)
                peak = max(peak, rss_mb(process_tree(process.pid)))
            cpu_used = cpu_seconds(process_tree(process.pid)) - cpu_start
            # Count segments while the streams are still up, before the publishers finish.
            produced = [server.segments(f"s{index}") for index in range(streams)]
            ok = sum(1 for publisher in publishers if publisher.wait(timeout=60) == 0)
        finally:
            for publisher in publishers:
                if publisher.poll() is None:
                    publisher.kill()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    expected = duration // SEGMENT_SECONDS - 1
    return Result(server.name, streams, cpu_used / (streams * duration), peak, expected, min(produced), ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--duration", type=int, default=30, help="seconds each run publishes")
    args = parser.parse_args()
    for tool in ("ffmpeg", "nginx"):
        if not shutil.which(tool):
            print(f"{tool} is missing: run `make bench`, which installs it", file=sys.stderr)
            return 1
    source = source_file()
    results = []
    print(
        f"{'server':<11} {'streams':>7} {'CPU s / stream-s':>17} {'peak RSS MB':>12} "
        f"{'segments min/expected':>22} {'publishers ok':>14}"
    )
    for streams in args.streams:
        for server in (NginxRtmp(), StreamHubEngine()):
            result = run(server, streams, args.duration, source)
            results.append(result)
            print(
                f"{result.server:<11} {result.streams:>7} {result.cpu_per_stream_second:>17.4f} "
                f"{result.peak_rss_mb:>12.1f} {result.segments_min:>10}/{result.segments_expected:<11} "
                f"{result.publishers_ok:>8}/{streams}",
                flush=True,
            )
        nginx, ours = results[-2], results[-1]
        ratio = (
            ours.cpu_per_stream_second / nginx.cpu_per_stream_second if nginx.cpu_per_stream_second else float("inf")
        )
        print(f"  -> StreamHub CPU per stream = {ratio:.2f}x nginx-rtmp at {streams} stream(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
