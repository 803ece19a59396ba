"""RTMP ingest + HLS: StreamHub's engine node as `make run` ships it beside nginx-rtmp, same run.

For each N (default 1, 10, 50 streams of 720p30, ~2.5 Mb/s H.264 + AAC, published by ffmpeg with
``-c copy``) each server takes the streams in two phases:

1. ingest (``--duration`` s): nobody watches. CPU and RSS of the server's processes are sampled.
2. watched (``--watch`` s): one HLS player per stream asks for the playlist (the delay until it is
   answered is the "first playlist" figure, for LL-HLS too on StreamHub), then reloads it every
   second and fetches every new segment, as a player does. CPU and RSS are sampled again, and a
   segment that should have appeared but did not (or could not be fetched) counts as missing.

StreamHub runs `manage.py runengine` against a fresh database with the application `app` exactly as
the data migration creates it (no tuned settings: HLS 4 s x 5 segments, LL-HLS 0.5 s parts, 6 s x 10
segments). nginx runs Debian's RTMP module with ``hls on`` and the same HLS segment length and window,
and its HTTP server serves the HLS folder. Figures are per stream: "CPU %" is percent of one core.

StreamHub's engine runs its shipped default of worker processes (`STREAMHUB_ENGINE_PROCESSES=auto`:
one per CPU behind the same ports); the CPU of each of its processes is printed under its line
(parent and workers, percent of one core over the whole phase), beside the missing segments.

    .venv/bin/python bench/rtmp_hls.py [--streams 1 10 50 100] [--duration 30] [--watch 20]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "bench"
# StreamHub's shipped HLS defaults (apps.engine.control_plane), mirrored in nginx's configuration.
SEGMENT_SECONDS = 4
SEGMENT_COUNT = 5
KEYFRAME_SECONDS = 2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# A player gives up on the first playlist after this long.
FIRST_PLAYLIST_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def source_file(b_frames: bool = True) -> Path:
    """A 60 s 720p30 H.264 (~2.5 Mb/s CBR, GOP 2 s) + AAC FLV, made once with ffmpeg; without
    ``b_frames`` for WebRTC players (they need none)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / ("source-720p30.flv" if b_frames else "source-720p30-nobframes.flv")
    if not path.exists():
        print("encoding the 720p30 source once (about a minute)...", flush=True)
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2", "-t", "60",
             "-c:v", "libx264", "-preset", "veryfast", *([] if b_frames else ["-bf", "0"]),
             "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "5000k",
             "-g", str(30 * KEYFRAME_SECONDS), "-keyint_min", str(30 * KEYFRAME_SECONDS), "-sc_threshold", "0",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(path)],
            check=True,
        )  # fmt: skip
    return path


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
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


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL when ``process`` has not ended ``timeout`` s later. Also used by other benches."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            continue
    return total / CLOCK_TICKS


def cpu_by_process(pids: list[int]) -> dict[int, float]:
    return {pid: cpu_seconds([pid]) for pid in pids}


def process_label(pid: int) -> str:
    """``worker N`` for an engine worker process, ``parent`` for the engine's parent, else the program."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return str(pid)
    words = [word.decode(errors="replace") for word in argv]
    if "--worker" in words:
        return f"worker {words[words.index('--worker') + 1]}"
    if "runengine" in words:
        return "engine" if "--processes" not in " ".join(words) else "parent"
    return Path(words[0]).name if words and words[0] else str(pid)


def cpu_percent_by_label(before: dict[int, float], pids: list[int], seconds: float) -> dict[str, float]:
    """Percent of one core each process used since ``before`` (processes started since count from 0)."""
    found: dict[str, float] = {}
    for pid in pids:
        label = process_label(pid)
        found[label] = found.get(label, 0.0) + 100 * (cpu_seconds([pid]) - before.get(pid, 0.0)) / seconds
    return found


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
            total += int(match.group(1)) if match else 0
        except OSError:
            continue
    return total / 1024


def fetch(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""
    except OSError:
        return 0, b""


def media_segments(playlist: str) -> list[tuple[int, str]]:
    """(media sequence number, URI) of each complete segment of a media playlist."""
    match = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist)
    sequence = int(match.group(1)) if match else 0
    found, lines = [], playlist.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("#EXTINF") and index + 1 < len(lines):
            found.append((sequence, lines[index + 1].strip()))
            sequence += 1
    return found


@dataclass
class Player:
    """One HLS player of one stream: first playlist delay, then reloads and segment fetches."""

    playlist_url: str
    base_url: str
    first_playlist: float | None = None
    seen: dict[int, bool] = field(default_factory=dict)  # sequence -> fetched a valid segment
    first_sequence: int | None = None
    failures: Counter = field(default_factory=Counter)  # failed segment fetches: "HTTP 404", "no answer"...

    def run(self, until: float) -> None:
        start = time.monotonic()
        while time.monotonic() < min(until, start + FIRST_PLAYLIST_TIMEOUT):
            status, body = fetch(self.playlist_url, FIRST_PLAYLIST_TIMEOUT)
            if status == 200 and b"#EXTINF" in body:
                self.first_playlist = time.monotonic() - start
                break
            time.sleep(0.2)
        if self.first_playlist is None:
            return
        while time.monotonic() < until:
            status, body = fetch(self.playlist_url)
            if status == 200:
                for sequence, uri in media_segments(body.decode(errors="replace")):
                    if self.first_sequence is None:
                        self.first_sequence = sequence
                    if sequence not in self.seen:
                        code, data = fetch(self.base_url + uri)
                        self.seen[sequence] = code == 200 and len(data) > 188 and data[0] == 0x47
                        if not self.seen[sequence]:
                            self.failures[f"HTTP {code}" if code else "no answer"] += 1
            time.sleep(1)

    def missing(self, watched_seconds: float) -> int:
        """Segments that should have come while watching but did not, or could not be fetched."""
        return sum(self.missing_by_cause(watched_seconds).values())

    def missing_by_cause(self, watched_seconds: float) -> dict[str, int]:
        """The missing segments by cause: no playlist at all (every segment of the window), fewer new
        segments listed than the time allowed ("late"), a fetch that failed, a sequence number skipped."""
        if self.first_playlist is None:
            return {"no playlist": max(1, int(watched_seconds // SEGMENT_SECONDS))}
        new = [sequence for sequence in self.seen if sequence != self.first_sequence]
        expected = max(0, int((watched_seconds - self.first_playlist) // SEGMENT_SECONDS) - 1)
        return {
            "late": max(0, expected - len(new)),
            **{f"failed ({why})": count for why, count in self.failures.items()},
            "gaps": (max(new) - min(new) + 1 - len(new)) if new else 0,
        }


@dataclass
class Result:
    server: str
    streams: int
    idle_rss_mb: float
    ingest_cpu_percent: float  # of a core, per stream
    ingest_rss_mb: float  # peak
    watched_cpu_percent: float
    watched_rss_mb: float
    first_playlist: list[float]
    first_llhls: list[float]
    missing: int
    missing_by_cause: dict[str, int]
    publishers_ok: int
    ingest_processes: dict[str, float] = field(default_factory=dict)  # label -> CPU % of a core
    watched_processes: dict[str, float] = field(default_factory=dict)

    @property
    def rss_per_stream(self) -> float:
        return (self.ingest_rss_mb - self.idle_rss_mb) / self.streams

    @property
    def watched_rss_per_stream(self) -> float:
        return (self.watched_rss_mb - self.idle_rss_mb) / self.streams


class Server:
    name = ""
    rtmp_port = 0
    http_port = 0

    def start(self, folder: Path) -> subprocess.Popen: ...

    def playlist_url(self, stream: str) -> str: ...

    def llhls_url(self, stream: str) -> str | None:
        return None


class NginxRtmp(Server):
    name = "nginx-rtmp"

    def start(self, folder: Path) -> subprocess.Popen:
        self.rtmp_port, self.http_port = free_port(), free_port()
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
      hls_playlist_length {SEGMENT_SECONDS * SEGMENT_COUNT}s;
    }}
  }}
}}
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{self.http_port};
    location /app/ {{ alias {self.hls}/; add_header Cache-Control no-cache; }}
  }}
}}
""")
        return subprocess.Popen(["nginx", "-c", str(config), "-p", str(folder)], stderr=subprocess.DEVNULL)

    def playlist_url(self, stream: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/app/{stream}.m3u8"


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
        }
        # The application `app` as the data migration creates it: nothing is tuned.
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        log = (CACHE / "engine.log").open("wb")  # (the last run's, kept for a look after the run)
        return subprocess.Popen(
            [sys.executable, "manage.py", "runengine", "--rtmp-host", "127.0.0.1", "--rtmp-port", str(self.rtmp_port),
             "--http-host", "127.0.0.1", "--http-port", str(self.http_port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def playlist_url(self, stream: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/app/{stream}/ts:playlist.m3u8"

    def llhls_url(self, stream: str) -> str | None:
        return f"http://127.0.0.1:{self.http_port}/app/{stream}/llhls.m3u8"


def wait_port(port: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def first_llhls(url: str, delays: list[float], lock: threading.Lock) -> None:
    """Master playlist, then its chunklist with at least one part: the delay until both are answered."""
    start = time.monotonic()
    while time.monotonic() - start < FIRST_PLAYLIST_TIMEOUT:
        status, body = fetch(url, FIRST_PLAYLIST_TIMEOUT)
        chunklist = next((line for line in body.decode(errors="replace").splitlines() if line.endswith(".m3u8")), None)
        if status == 200 and chunklist:
            status, body = fetch(url.rsplit("/", 1)[0] + "/" + chunklist, FIRST_PLAYLIST_TIMEOUT)
            if status == 200 and b"#EXT-X-PART:" in body:
                with lock:
                    delays.append(time.monotonic() - start)
                return
        time.sleep(0.2)


class Sampler:
    """Peak RSS of a process tree, sampled every second in the background."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1):
            self.peak = max(self.peak, rss_mb(process_tree(self.pid)))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, rss_mb(process_tree(self.pid)))


def publishers(base_url: str, names: list[str], source: Path, seconds: int | None = None) -> list[subprocess.Popen]:
    """One ffmpeg per name copying ``source`` in a loop, in real time, to ``base_url/name`` (RTMP), for
    ``seconds`` (None: until killed). Also used by bench/api_throughput.py."""
    limit = ["-t", str(seconds)] if seconds is not None else []
    return [
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
                *limit,
                "-f",
                "flv",
                f"{base_url}/{name}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for name in names
    ]


def publish(server: Server, streams: int, seconds: int | None, source: Path) -> list[subprocess.Popen]:
    names = [f"s{index}" for index in range(streams)]
    return publishers(f"rtmp://127.0.0.1:{server.rtmp_port}/app", names, source, seconds)


def profiler(pid: int, seconds: int, output: Path | None) -> subprocess.Popen | None:
    """py-spy sampling the engine and its worker processes (as root) into collapsed stacks (`--format
    raw`, each stack under its process), or None."""
    if output is None:
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--format",
        "raw",
        "--rate",
        "50",
        "--subprocesses",
    ]
    command += ["--pid", str(pid), "--duration", str(seconds), "--output", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(server: Server, streams: int, duration: int, watch: int, source: Path, profile: Path | None = None) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        process = server.start(Path(folder))
        publishers: list[subprocess.Popen] = []
        try:
            wait_port(server.rtmp_port)
            wait_port(server.http_port)
            time.sleep(2)  # settle: the idle footprint
            idle_rss = rss_mb(process_tree(process.pid))
            publishers = publish(server, streams, None, source)  # (until killed: a slow phase must not outlive them)
            time.sleep(3)  # connect and start: not part of the steady state measured below

            # 1. ingest: nobody watches
            sampler = Sampler(process.pid)
            spy = profiler(process.pid, duration, profile and profile / f"{streams}-ingest.txt")
            cpu_start = cpu_seconds(process_tree(process.pid))
            per_process = cpu_by_process(process_tree(process.pid))
            time.sleep(duration)
            ingest_cpu = cpu_seconds(process_tree(process.pid)) - cpu_start
            ingest_processes = cpu_percent_by_label(per_process, process_tree(process.pid), duration)
            ingest_rss = sampler.stop()

            # 2. watched: one HLS player per stream (and one LL-HLS start on StreamHub)
            if spy is not None:
                spy.wait()
            sampler = Sampler(process.pid)
            spy = profiler(process.pid, watch, profile and profile / f"{streams}-watched.txt")
            cpu_start = cpu_seconds(process_tree(process.pid))
            per_process = cpu_by_process(process_tree(process.pid))
            watch_start = time.monotonic()
            until = time.monotonic() + watch
            players = [
                Player(server.playlist_url(f"s{index}"), server.playlist_url(f"s{index}").rsplit("/", 1)[0] + "/")
                for index in range(streams)
            ]
            threads = [threading.Thread(target=player.run, args=(until,)) for player in players]
            llhls_delays: list[float] = []
            lock = threading.Lock()
            for index in range(streams):
                url = server.llhls_url(f"s{index}")
                if url is not None:
                    threads.append(threading.Thread(target=first_llhls, args=(url, llhls_delays, lock)))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            watched_cpu = cpu_seconds(process_tree(process.pid)) - cpu_start
            watched_processes = cpu_percent_by_label(
                per_process, process_tree(process.pid), time.monotonic() - watch_start
            )
            watched_rss = sampler.stop()
            if spy is not None:
                spy.wait()
            ok = sum(1 for publisher in publishers if publisher.poll() is None)
        finally:
            for publisher in publishers:
                publisher.kill()
                publisher.wait()
            stop_process(process, timeout=20)
    firsts = [player.first_playlist for player in players if player.first_playlist is not None]
    return Result(
        server=server.name,
        streams=streams,
        idle_rss_mb=idle_rss,
        ingest_cpu_percent=100 * ingest_cpu / (streams * duration),
        ingest_rss_mb=ingest_rss,
        watched_cpu_percent=100 * watched_cpu / (streams * watch),
        watched_rss_mb=watched_rss,
        first_playlist=firsts,
        first_llhls=llhls_delays,
        missing=sum(player.missing(watch) for player in players),
        missing_by_cause=dict(sum((Counter(player.missing_by_cause(watch)) for player in players), Counter())),
        publishers_ok=ok,
        ingest_processes=ingest_processes,
        watched_processes=watched_processes,
    )


def delays(values: list[float], streams: int) -> str:
    if not values:
        return "-"
    text = f"{statistics.median(values):.1f}/{max(values):.1f}"
    return text if len(values) == streams else f"{text} ({streams - len(values)} none)"


HEADER = (
    f"{'server':<11} {'N':>4} {'ingest CPU%':>11} {'watched CPU%':>12} {'idle RSS':>8} {'ingest RSS':>10} "
    f"{'/stream':>7} {'watched RSS':>11} {'/stream':>7} {'1st HLS s':>10} {'1st LL-HLS s':>12} "
    f"{'missing':>7} {'pub ok':>6}"
)


def line(result: Result) -> str:
    return (
        f"{result.server:<11} {result.streams:>4} {result.ingest_cpu_percent:>11.2f} "
        f"{result.watched_cpu_percent:>12.2f} "
        f"{result.idle_rss_mb:>8.0f} {result.ingest_rss_mb:>10.0f} {result.rss_per_stream:>7.2f} "
        f"{result.watched_rss_mb:>11.0f} {result.watched_rss_per_stream:>7.2f} "
        f"{delays(result.first_playlist, result.streams):>10} {delays(result.first_llhls, result.streams):>12} "
        f"{result.missing:>7} {result.publishers_ok:>3}/{result.streams}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--duration", type=int, default=30, help="seconds of ingest with nobody watching")
    parser.add_argument("--watch", type=int, default=20, help="seconds with one HLS player per stream")
    parser.add_argument("--only", choices=["nginx-rtmp", "StreamHub"], help="run one server only")
    parser.add_argument(
        "--profile", type=Path, help="folder for py-spy profiles of the engine (collapsed stacks; needs root)"
    )
    args = parser.parse_args()
    for tool in ("ffmpeg", "nginx"):
        if not shutil.which(tool):
            print(f"{tool} is missing: run `make bench`, which installs it", file=sys.stderr)
            return 1
    source = source_file()
    print("CPU%: percent of one core per stream; RSS in MB (/stream: above the idle server);")
    print("1st playlist: seconds from a player's first request to a playlist with a segment (median/max)")
    print(HEADER, flush=True)
    for streams in args.streams:
        pair = []
        for server in (NginxRtmp(), StreamHubEngine()):
            if args.only and server.name != args.only:
                continue
            profile = args.profile if isinstance(server, StreamHubEngine) else None
            result = run(server, streams, args.duration, args.watch, source, profile)
            pair.append(result)
            print(line(result), flush=True)
            if result.missing:
                causes = ", ".join(f"{cause} {count}" for cause, count in sorted(result.missing_by_cause.items()))
                print(f"  {result.server} missing segments by cause: {causes}", flush=True)
            if len(result.ingest_processes) > 1:
                for phase, figures in (("ingest", result.ingest_processes), ("watched", result.watched_processes)):
                    shares = ", ".join(f"{label} {percent:.2f}%" for label, percent in sorted(figures.items()))
                    print(f"  {result.server} processes, {phase} (CPU % of one core): {shares}", flush=True)
        if len(pair) == 2 and pair[0].ingest_cpu_percent and pair[0].watched_cpu_percent:
            ingest = pair[1].ingest_cpu_percent / pair[0].ingest_cpu_percent
            watched = pair[1].watched_cpu_percent / pair[0].watched_cpu_percent
            print(
                f"  -> StreamHub CPU per stream: {ingest:.2f}x nginx-rtmp ingesting, {watched:.2f}x watched", flush=True
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
