"""CPU of a SIP video call's re-encode: the SIP agent publishing a phone's H.264 video (decoded, then
encoded again as the stream's H.264) beside ffmpeg doing the same decode + encode, in the same run.

sipp plays the far end (tests/integration/sipp/answer_video.xml: it answers G.711 µ-law audio and
H.264 video and sends a 1 kHz tone); the phone's camera is a pcap of H.264 RTP (Constrained
Baseline, 25 fps, a keyframe every second, ~0.1 bit per pixel: a bar moving over a detailed panning
background; tests/tools/rtp.py) sent to the agent's video port with its timing.
For each picture size, one after the other:

* ``agent video``: `media_engine.sip.agent` in a call with ``hasVideo``, publishing into a bare
  engine node (tests/tools/engine_process.py): PJSIP's audio, AAC, the far end's H.264 decoded by
  `H264Receiver`, encoded again by `RtmpOutput` (libx264 ultrafast, zerolatency, GOP 50);
* ``ffmpeg``: Debian's ffmpeg receiving the same RTP (an SDP file), decoding it and encoding
  libx264 with the same settings into the same engine (video only).

Once, the agent in an audio-only call gives the call's cost without video: ``agent video`` minus it
is the video's share, printed beside ffmpeg's. Each is measured for DURATION seconds after a
warm-up: the CPU time (user + system, every thread) of its process per second of wall time.

    .venv/bin/python bench/sip_video_cpu.py [--sizes 320x240,640x480] [--duration 20] [--rounds 1]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.rtmp_hls import stop_process  # noqa: E402
from media_engine.sip.agent import CallSpec  # noqa: E402
from media_engine.sip.process import CallProcess  # noqa: E402
from tests.tools.rtp import PcapPlayer, h264_pcap, tone_pcap  # noqa: E402

ENGINE = ROOT / "tests" / "tools" / "engine_process.py"
SCENARIO = ROOT / "tests" / "integration" / "sipp" / "answer_video.xml"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FPS = 25
WARM_UP = 6.0  # seconds: the call is placed, the publisher waits for the first picture and opens


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def free_udp_port() -> int:
    """A UDP port whose neighbour two up is free too (sipp binds both for its media)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                other.bind(("127.0.0.1", port + 2))
            return port
        except OSError:
            continue


def cores_of(pid: int, duration: float) -> float:
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(duration)
    return (cpu_seconds(pid) - before) / (time.monotonic() - started)


class Sinks:
    """UDP sockets standing for the phone's audio and video ports (what the call sends is dropped)."""

    def __init__(self) -> None:
        self.sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        for sink in self.sockets:
            sink.bind(("127.0.0.1", 0))
        self.audio, self.video = (sink.getsockname()[1] for sink in self.sockets)

    def close(self) -> None:
        for sink in self.sockets:
            sink.close()


def measure_agent(folder: Path, rtmp: str, tone: Path, camera: Path | None, duration: float) -> float:
    """CPU (cores) of the SIP agent in a call answered by sipp, with the phone's video when ``camera``."""
    sinks = Sinks()
    sip_port = free_udp_port()
    messages = folder / f"sipp-{sip_port}-messages.log"
    sipp = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(sip_port), "-mi", "127.0.0.1",
         "-mp", str(free_udp_port()), "-nostdin", "-nd", "-trace_msg", "-message_file", str(messages),
         "-key", "rtp_port", str(sinks.audio),
         "-key", "pcap", str(tone), "-key", "pt", "0", "-key", "codec", "PCMU",
         "-key", "video_rtp_port", str(sinks.video)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder,
    )  # fmt: skip
    name = "video" if camera else "audio"
    spec = CallSpec(callee="100", domain="127.0.0.1", port=sip_port, has_video=camera is not None,
                    publish_urls=[f"{rtmp}/sip_{name}_{sip_port}"], bind_host="127.0.0.1")  # fmt: skip
    call = CallProcess(spec)
    player = None
    try:
        call.start()
        video_port = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            event = call.next_event(0.5) or {}
            if event.get("event") == "status" and event["status"] in ("FAILED", "FINISHED"):
                raise RuntimeError(f"the call ended: {event}")
            if event.get("event") == "media":
                video_port = sipp_video_offer(messages) if camera else 0
                break
        if video_port is None:
            raise RuntimeError("the call was not answered")
        if camera is not None:
            player = PcapPlayer(camera, "127.0.0.1", video_port)
        time.sleep(WARM_UP)
        if not call.running:
            raise RuntimeError("the SIP agent exited")
        published = probe(spec.publish_urls[0])
        if published != ({"audio", "video"} if camera else {"audio"}):
            raise RuntimeError(f"the call's stream has {published}")
        cores = cores_of(call.process.pid, duration)
        stats = [event for event in iter(lambda: call.next_event(0.01), None) if event.get("event") == "stats"]
        if camera is not None and not (stats and stats[-1]["received_pictures"] > FPS * duration / 2):
            raise RuntimeError(f"the agent decoded too few pictures: {stats[-1:]}")
        return cores
    finally:
        if player is not None:
            player.stop()
        call.stop()
        sipp.send_signal(signal.SIGTERM)
        sipp.wait(10)
        sinks.close()


def probe(url: str) -> set[str]:
    """The kinds of track ffprobe finds in the stream at ``url``."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-rw_timeout", "5000000", "-show_entries", "stream=codec_type", "-of", "csv=p=0",
         url],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return set(result.stdout.split())


def sipp_video_offer(messages: Path) -> int:
    """The agent's video port, from its INVITE in sipp's message trace."""
    found = re.search(r"^m=video (\d+) RTP/AVP", messages.read_text(errors="replace"), re.MULTILINE)
    if found is None:
        raise RuntimeError("no m=video in the agent's INVITE")
    return int(found.group(1))


def measure_ffmpeg(folder: Path, rtmp: str, camera: Path, width: int, duration: float) -> float:
    """CPU (cores) of ffmpeg receiving the camera's RTP, decoding and encoding it as the agent does."""
    port = free_udp_port()
    sdp = folder / f"camera-{width}.sdp"
    sdp.write_text(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=camera\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=video {port} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n"
    )
    ffmpeg = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-v", "error", "-protocol_whitelist", "file,udp,rtp", "-i", str(sdp),
         "-an", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "50",
         "-pix_fmt", "yuv420p", "-f", "flv", f"{rtmp}/ffmpeg_{width}_{port}"],
        stdin=subprocess.DEVNULL, cwd=folder,
    )  # fmt: skip
    time.sleep(1)  # ffmpeg binds the port
    player = PcapPlayer(camera, "127.0.0.1", port)
    try:
        time.sleep(WARM_UP)
        if ffmpeg.poll() is not None:
            raise RuntimeError("ffmpeg exited")
        return cores_of(ffmpeg.pid, duration)
    finally:
        player.stop()
        stop_process(ffmpeg)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="320x240,640x480", help="the far end's picture sizes")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per run")
    parser.add_argument("--rounds", type=int, default=1, help="measure everything this many times")
    args = parser.parse_args()
    assert shutil.which("sipp"), "sipp is missing: `make test` installs Debian's sip-tester"
    sizes = [tuple(int(part) for part in size.split("x")) for size in args.sizes.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="sip-video-bench-"))
    seconds = WARM_UP + args.duration + 10
    tone = tone_pcap(folder / "tone.pcap", 1000, seconds + 20)
    cameras = {
        (width, height): h264_pcap(folder / f"camera-{width}x{height}.pcap", width, height, seconds, FPS, textured=True)
        for width, height in sizes
    }
    engine = subprocess.Popen([sys.executable, str(ENGINE)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        ready, rtmp_port, _ = engine.stdout.readline().split()
        assert ready == "ready"
        rtmp = f"rtmp://127.0.0.1:{rtmp_port}/app"
        results: dict[str, list[float]] = {}
        for round_number in range(args.rounds):
            runs = [("agent audio only", lambda: measure_agent(folder, rtmp, tone, None, args.duration))]
            for (width, height), camera in cameras.items():
                size = f"{width}x{height}"
                runs.append(
                    (f"agent video {size}", lambda c=camera: measure_agent(folder, rtmp, tone, c, args.duration))
                )
                runs.append(
                    (f"ffmpeg {size}", lambda c=camera, w=width: measure_ffmpeg(folder, rtmp, c, w, args.duration))
                )
            for name, run in runs:
                cores = run()
                results.setdefault(name, []).append(cores)
                print(f"round {round_number + 1}: {name:22} {cores * 100:6.1f} % of a core "
                      f"(load average {os.getloadavg()[0]:.2f})", flush=True)  # fmt: skip
        mean = {name: sum(values) / len(values) for name, values in results.items()}
        audio = mean["agent audio only"]
        print()
        print(f"load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())} on {os.cpu_count()} cores")
        print(f"SIP agent, audio-only call (G.711 -> AAC): {audio * 100:6.1f} % of a core")
        print(f"far end's H.264 at {FPS} fps, decoded and encoded again (libx264 ultrafast, zerolatency):")
        for width, height in sizes:
            size = f"{width}x{height}"
            call, reference = mean[f"agent video {size}"], mean[f"ffmpeg {size}"]
            video = call - audio
            print(f"  {size:>9}: video call {call * 100:6.1f} %, its video {video * 100:6.1f} %, "
                  f"ffmpeg {reference * 100:6.1f} % (ratio {video / reference:.2f}x)")  # fmt: skip
    finally:
        engine.kill()
        engine.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
