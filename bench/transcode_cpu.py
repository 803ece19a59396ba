"""CPU of one 720p -> 360p live transcode: StreamHub's Transcoder (PyAV) beside ffmpeg, same run.

A bare engine node (tests/tools/engine_process.py) receives a 720p30 stream (~2.5 Mb/s, GOP 2 s,
published by ffmpeg with `-c copy`). Then, one after the other, each transcoder plays it over RTMP,
decodes it, scales it to 640x360 (bilinear), encodes H.264 (libx264 veryfast, 800 kb/s capped,
no B-frames, keyframes every 2 s) and AAC 128 kb/s, and publishes the result back into the engine:

* ``streamhub``: `media_engine.jobs.transcode.Transcoder` with one rendition, in a process of its own;
* ``ffmpeg``: Debian's ffmpeg doing the same (`-threads 1` like the Transcoder's single-threaded codecs).

After a warm-up, each runs for DURATION seconds; the CPU time (user + system) of its process,
per second of media, is printed for both, with the ratio (target: within 1.3x of ffmpeg).

    .venv/bin/python bench/transcode_cpu.py [--duration 30] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.rtmp_hls import source_file, stop_process  # noqa: E402  (the same 720p30 source, made once)

ENGINE = ROOT / "tests" / "tools" / "engine_process.py"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WARM_UP = 5.0
VIDEO_BITRATE = 800_000
AUDIO_BITRATE = 128_000


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def ffmpeg_command(source: str, target: str) -> list[str]:
    return [
        "ffmpeg", "-nostdin", "-v", "error", "-threads", "1", "-i", source,
        "-vf", "scale=640:360:flags=bilinear", "-filter_threads", "1",
        "-c:v", "libx264", "-threads", "1", "-preset", "veryfast", "-b:v", str(VIDEO_BITRATE),
        "-maxrate", str(VIDEO_BITRATE), "-bufsize", str(2 * VIDEO_BITRATE), "-bf", "0", "-g", "60",
        "-x264-params", "scenecut=0", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", str(AUDIO_BITRATE), "-f", "flv", target,
    ]  # fmt: skip


def streamhub_command(source: str, target: str) -> list[str]:
    return [sys.executable, __file__, "--run-transcoder", source, target]


def run_transcoder(source: str, target: str) -> None:
    """The Transcoder with one 360p rendition until SIGTERM (the ``streamhub`` side)."""
    from media_engine.jobs.transcode import AudioEncoding, Rendition, Transcoder, VideoEncoding

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    video = VideoEncoding(bitrate=VIDEO_BITRATE, width=640, height=360, preset="veryfast")
    rendition = Rendition("360p", target, video, AudioEncoding(bitrate=AUDIO_BITRATE))
    Transcoder(source, [rendition], should_stop=stop.is_set).run()


def measure(name: str, command: list[str], duration: float) -> float:
    """CPU seconds per second of wall time (= per second of live media) of one transcoder."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, cwd=ROOT)
    try:
        time.sleep(WARM_UP)
        assert process.poll() is None, f"{name} exited early"
        before, started = cpu_seconds(process.pid), time.monotonic()
        time.sleep(duration)
        assert process.poll() is None, f"{name} exited during the measurement"
        return (cpu_seconds(process.pid) - before) / (time.monotonic() - started)
    finally:
        stop_process(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured per transcoder and round")
    parser.add_argument("--rounds", type=int, default=1, help="measure both this many times, alternating")
    parser.add_argument("--run-transcoder", nargs=2, metavar=("SOURCE", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_transcoder:
        run_transcoder(*args.run_transcoder)
        return 0

    source = source_file()
    engine = subprocess.Popen([sys.executable, str(ENGINE)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    publisher = None
    try:
        ready, rtmp_port, _ = engine.stdout.readline().split()
        assert ready == "ready"
        base = f"rtmp://127.0.0.1:{rtmp_port}/app"
        publisher = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(source), "-c", "copy",
             "-f", "flv", f"{base}/src"],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(2)
        results: dict[str, list[float]] = {"streamhub": [], "ffmpeg": []}
        for round_number in range(args.rounds):
            for name, command in (
                ("streamhub", streamhub_command(f"{base}/src", f"{base}/out_streamhub")),
                ("ffmpeg", ffmpeg_command(f"{base}/src", f"{base}/out_ffmpeg")),
            ):
                cores = measure(name, command, args.duration)
                results[name].append(cores)
                print(f"round {round_number + 1}: {name:9} {cores * 100:6.1f} % of a core", flush=True)
        ours = sum(results["streamhub"]) / len(results["streamhub"])
        reference = sum(results["ffmpeg"]) / len(results["ffmpeg"])
        print()
        print("720p30 -> 360p (libx264 veryfast 800k + AAC 128k), CPU per live transcode:")
        print(f"  streamhub (PyAV Transcoder): {ours * 100:6.1f} % of a core")
        print(f"  ffmpeg (same settings):      {reference * 100:6.1f} % of a core")
        print(f"  ratio: {ours / reference:.2f}x (target <= 1.30x)")
    finally:
        if publisher is not None:
            publisher.terminate()
            publisher.wait(10)
        engine.kill()
        engine.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
