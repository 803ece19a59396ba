"""WHEP playback: glass-to-glass latency in headless Chromium, and the engine's CPU per WHEP viewer.

The source is bench/llhls_latency.py's: frames carrying the wall-clock time they were drawn as a
barcode, encoded by ffmpeg (x264 ``zerolatency``, GOP 1 s, no audio) and published over RTMP to an
engine node in a process of its own (WebRTC host candidates on 127.0.0.1). Chromium plays the stream
over WHEP from the engine's operator page (plain RTCPeerConnection); for every frame it presents
(``requestVideoFrameCallback``) the page reads the barcode: latency = display time - drawn time.

CPU: the engine process's CPU time (user + system, from /proc) over a window with no viewer, then with
1 and 20 WHEP viewers. Those viewers are aiortc peer connections in another process that take the
frames without decoding them (the engine's cost, not a player's). Per viewer = (with N - none) / N.
The reference, measured in the same run: the engine's CPU with as many RTMP players (ffmpeg -c copy).

    .venv/bin/python bench/webrtc_latency.py [--duration 20] [--window 10] [--viewers 1,20]
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

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llhls_latency import BITS, CELL, FPS, HEIGHT, LEFT, ROW_HEIGHT, TOP, WIDTH, publish, summary  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
WARM_UP = 5.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

ENGINE = """
import asyncio, sys
sys.path.insert(0, {root!r})
from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.node import EngineNode, NodeAddresses
from media_engine.webrtc.ice import IcePolicy
from media_engine.webrtc.service import WebRtcSettings

async def main():
    node = EngineNode(StaticControlPlane([ApplicationConfig("default", "app")]),
                      NodeAddresses("127.0.0.1", 0, "127.0.0.1", 0),
                      WebRtcSettings(ice=IcePolicy(host_addresses=("127.0.0.1",))))
    await node.start()
    print("ready", node.rtmp.port, node.http.port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

VIEWERS = """
import asyncio, sys
sys.path.insert(0, {root!r})
import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from media_engine.webrtc import ice, passthrough
from media_engine.webrtc.ice import IcePolicy, use_policy

POLICY = IcePolicy(host_addresses=("127.0.0.1",))
ice.install(); passthrough.install()
frames = 0

async def viewer(http, url):
    global frames
    pc = RTCPeerConnection(POLICY.rtc_configuration())
    connected = asyncio.Event()
    pc.on("connectionstatechange", lambda: pc.connectionState == "connected" and connected.set())

    @pc.on("track")
    def on_track(track):
        passthrough.receive_encoded(track)  # take the frames, decode nothing
        async def read():
            global frames
            while True:
                await track.recv()
                frames += 1
        asyncio.ensure_future(read())

    with use_policy(POLICY):
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
    async with http.post(url, data=pc.localDescription.sdp, headers={{"Content-Type": "application/sdp"}}) as response:
        assert response.status == 201, await response.text()
        answer = await response.text()
    with use_policy(POLICY):
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await asyncio.wait_for(connected.wait(), 30)
    return pc

async def main():
    async with aiohttp.ClientSession() as http:
        pcs = [await viewer(http, {url!r}) for _ in range({count})]
        await asyncio.sleep(2)
        print("connected", len(pcs), frames, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""

PLAYER = """
([bits, cell, rowHeight, left, top]) => {
  const video = document.getElementById("player");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth || 640; canvas.height = video.videoHeight || 360;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  window.samples = [];
  function read(row) {
    const y = top + row * (rowHeight + 8) + rowHeight / 2;
    const pixels = context.getImageData(0, y, left + bits * cell, 1).data;
    let value = 0;
    for (let i = 0; i < bits; i++) value = value * 2 + (pixels[4 * (left + i * cell + cell / 2)] > 127 ? 1 : 0);
    return value;
  }
  function onFrame(_now, metadata) {
    const shownAt = performance.timeOrigin + metadata.expectedDisplayTime;
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const drawnAt = read(0), check = read(1);
    if ((drawnAt ^ check) >>> 0 === 0xFFFFFFFF) {
      window.samples.push([shownAt, ((Math.floor(shownAt) % 4294967296) - drawnAt + 4294967296) % 4294967296]);
    }
    video.requestVideoFrameCallback(onFrame);
  }
  video.requestVideoFrameCallback(onFrame);
}
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def cpu_percent(pid: int, window: float) -> float:
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    time.sleep(window)
    return 100 * (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of latency measured after warm-up")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of each CPU measurement")
    parser.add_argument("--viewers", default="1,20", help="WHEP viewer counts for the CPU measurement")
    args = parser.parse_args()
    assert Path(CHROMIUM).exists(), f"Chromium is missing at {CHROMIUM}"

    engine = subprocess.Popen(
        [sys.executable, "-c", ENGINE.format(root=str(ROOT))], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    stop = threading.Event()
    encoder = None
    try:
        _, rtmp_port, http_port = engine.stdout.readline().split()
        encoder = publish(f"rtmp://127.0.0.1:{rtmp_port}/app/clock", stop)
        media = f"http://127.0.0.1:{http_port}"
        time.sleep(3)
        idle = cpu_percent(engine.pid, args.window)
        print(f"engine CPU, RTMP publisher and no viewer: {idle:.1f} %", flush=True)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--allow-loopback-in-peer-connection",
                      "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required"],
            )  # fmt: skip
            page = browser.new_page(viewport={"width": WIDTH + 100, "height": HEIGHT + 600})
            page.goto(f"{media}/")
            page.fill("#stream", "clock")
            page.evaluate("streamhub.play()")
            page.wait_for_function("document.getElementById('player').videoWidth > 0", timeout=30000)
            page.evaluate(PLAYER, [BITS, CELL, ROW_HEIGHT, LEFT, TOP])
            print(f"warming up {WARM_UP:.0f} s, then measuring {args.duration:.0f} s...", flush=True)
            time.sleep(WARM_UP)
            since = time.time() * 1000
            time.sleep(args.duration)
            samples = [s for s in page.evaluate("() => window.samples") if s[0] >= since]
            print(f"WHEP glass-to-glass latency, {WIDTH}x{HEIGHT}@{FPS} x264 zerolatency GOP 1 s, loopback, Chromium:")
            print(f"  {summary('WHEP', samples, 0)}", flush=True)
            browser.close()

        for count in (int(n) for n in args.viewers.split(",")):
            script = VIEWERS.format(root=str(ROOT), url=f"{media}/app/clock?direction=whep", count=count)
            viewers = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
            try:
                line = viewers.stdout.readline().split()
                if line[:1] != ["connected"]:
                    raise SystemExit(f"viewers did not connect: {line}")
                busy = cpu_percent(engine.pid, args.window)
                print(
                    f"engine CPU with {count:2d} WHEP viewers: {busy:5.1f} %  "
                    f"({(busy - idle) / count:.2f} % of a core per viewer; {line[2]} frames in their first 2 s)",
                    flush=True,
                )
            finally:
                viewers.kill()
                viewers.wait()
            time.sleep(2)
            # The reference, same engine and stream: as many RTMP players (ffmpeg -c copy), the cheapest way out.
            players = [
                subprocess.Popen(
                    [
                        "ffmpeg",
                        "-nostdin",
                        "-v",
                        "error",
                        "-i",
                        f"rtmp://127.0.0.1:{rtmp_port}/app/clock",
                        "-c",
                        "copy",
                        "-f",
                        "null",
                        "-",
                    ],
                    stdin=subprocess.DEVNULL,
                )  # fmt: skip
                for _ in range(count)
            ]
            try:
                time.sleep(3)
                busy = cpu_percent(engine.pid, args.window)
                print(
                    f"engine CPU with {count:2d} RTMP players (reference): {busy:5.1f} %  "
                    f"({(busy - idle) / count:.2f} % of a core per player)",
                    flush=True,
                )
            finally:
                for player in players:
                    player.kill()
                    player.wait()
            time.sleep(2)
    finally:
        stop.set()
        if encoder is not None:
            encoder.wait(timeout=10)
        os.killpg(engine.pid, signal.SIGTERM)
        engine.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
