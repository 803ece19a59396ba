"""Glass-to-glass latency of LL-HLS beside plain HLS, same source, same run, headless Chromium with hls.js.

A Python loop draws 30 frames a second, each carrying the wall-clock time (ms) at which it was drawn as
a binary barcode (32 bits, and a second row with the bits inverted as a check), and pipes them raw to
ffmpeg, which encodes them (x264 ``zerolatency``, GOP 1 s, no audio) and publishes over RTMP to a
StreamHub engine node (the media engine as `manage.py runengine` runs it; no database needed here).
Two Chromium pages play the stream with the vendored hls.js: LL-HLS (``llhls.m3u8``, ``lowLatencyMode``)
and HLS (``ts:playlist.m3u8``, hls.js defaults). For every frame Chromium presents
(``requestVideoFrameCallback``, at its expected display time) the page draws the video onto a canvas,
decodes the barcode and takes ``display time - drawn time``: encode, RTMP, packaging, HTTP, the
player's buffer, decode and composition, all included. Everything runs on one machine (one clock).

    .venv/bin/python bench/llhls_latency.py [--duration 60] [--part 0.2] [--llhls-segment 6] [--hls-segment 4]

Defaults are the platform's (`ApplicationConfig`'s LL-HLS settings, as an application without LL-HLS settings
gets them: 0.2 s parts in 6 s segments; HLS segments of 4 s), and the players are configured as the platform's
player pages configure hls.js.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from media_engine.control import ApplicationConfig  # noqa: E402

DEFAULTS = ApplicationConfig("default", "app")
HLS_JS = ROOT / "apps" / "streams" / "static" / "streams" / "vendor" / "hls.js" / "hls.min.js"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
WIDTH, HEIGHT, FPS = 640, 360, 30
BITS, CELL, ROW_HEIGHT, LEFT, TOP = 32, 16, 32, 64, 40
WARM_UP = 8.0  # seconds of playback before measuring (players settle on their target latency)

ENGINE = """
import asyncio, sys
sys.path.insert(0, {root!r})
from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.node import EngineNode, NodeAddresses

async def main():
    config = ApplicationConfig("default", "app", hls_segment_duration={hls}, hls_segment_count=5, **{llhls})
    node = EngineNode(StaticControlPlane([config]),
                      NodeAddresses(rtmp_host="127.0.0.1", rtmp_port=0, http_host="127.0.0.1", http_port=0))
    await node.start()
    print("ready", node.rtmp.port, node.http.port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

PAGE = """<!doctype html><html><body style="margin:0;background:#000">
<video id="v" muted autoplay playsinline width="{w}" height="{h}"></video>
<canvas id="c" width="{w}" height="{h}" style="display:none"></canvas></body></html>"""

PLAYER = """
([source, config, layout]) => {
  const [bits, cell, rowHeight, left, top] = layout;
  const video = document.getElementById("v");
  const context = document.getElementById("c").getContext("2d", { willReadFrequently: true });
  window.samples = []; window.errors = []; window.stalls = 0;
  const hls = new Hls(config);
  window.hls = hls;
  hls.on(Hls.Events.ERROR, (_e, data) => {
    window.errors.push(data.details);
    if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) window.stalls += 1;
  });
  hls.loadSource(source);
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
  function read(row) {
    const y = top + row * (rowHeight + 8) + rowHeight / 2;
    const pixels = context.getImageData(0, y, left + bits * cell, 1).data;
    let value = 0;
    for (let i = 0; i < bits; i++) {
      const bit = pixels[4 * (left + i * cell + cell / 2)] > 127 ? 1 : 0;
      value = value * 2 + bit;
    }
    return value;
  }
  function onFrame(_now, metadata) {
    const shownAt = performance.timeOrigin + metadata.expectedDisplayTime;
    context.drawImage(video, 0, 0);
    const drawnAt = read(0), check = read(1);
    if ((drawnAt ^ check) >>> 0 === 0xFFFFFFFF) {
      const latency = ((Math.floor(shownAt) % 4294967296) - drawnAt + 4294967296) % 4294967296;
      window.samples.push([shownAt, latency]);
    }
    video.requestVideoFrameCallback(onFrame);
  }
  video.requestVideoFrameCallback(onFrame);
}
"""


# name: (playlist, hls.js config, settings shown). The player page (admin, ?llhls=1) configures hls.js as the
# first one: low-latency mode, catching up to its target latency at up to 1.5x speed after joining.
PLAYERS = {
    "LL-HLS": ("llhls.m3u8", {"lowLatencyMode": True, "maxLiveSyncPlaybackRate": 1.5},
               "part {part} s, segment {llhls} s, hls.js lowLatencyMode + maxLiveSyncPlaybackRate 1.5"),
    "LL-HLS*": ("llhls.m3u8", {"lowLatencyMode": True}, "the same, hls.js lowLatencyMode alone (no catching up)"),
    "HLS": ("ts:playlist.m3u8", {}, "segment {hls} s, hls.js defaults"),
}  # fmt: skip


def barcode_frame(value: int) -> bytes:
    """A gray 640x360 frame: two rows of 32 cells, ``value`` (ms, low 32 bits) and its complement."""
    background = b"\x80"
    rows = []
    for bits in (value, ~value & 0xFFFFFFFF):
        cells = b"".join((b"\xff" if bits >> (BITS - 1 - i) & 1 else b"\x00") * CELL for i in range(BITS))
        line = background * LEFT + cells + background * (WIDTH - LEFT - BITS * CELL)
        rows.append(line)
    blank = background * WIDTH
    frame = [blank] * TOP
    for line in rows:
        frame += [line] * ROW_HEIGHT + [blank] * 8
    frame += [blank] * (HEIGHT - len(frame))
    return b"".join(frame)


def publish(rtmp_url: str, stop: threading.Event) -> subprocess.Popen:
    encoder = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS),
         "-i", "-", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(FPS),
         "-pix_fmt", "yuv420p", "-f", "flv", rtmp_url],
        stdin=subprocess.PIPE,
    )  # fmt: skip

    def frames() -> None:
        start = time.monotonic()
        count = 0
        try:
            while not stop.is_set():
                delay = start + count / FPS - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                encoder.stdin.write(barcode_frame(int(time.time() * 1000) & 0xFFFFFFFF))
                count += 1
        except (BrokenPipeError, ValueError):
            pass
        finally:
            try:
                encoder.stdin.close()
            except BrokenPipeError:
                pass

    threading.Thread(target=frames, daemon=True).start()
    return encoder


def wait_playlist(url: str, segments: int, timeout: float = 60) -> None:
    """Until the media playlist at ``url`` lists ``segments`` complete segments: players join a stream that
    has been live for a while, as viewers do (one that starts with the stream stays behind by what it waited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=5).read().count(b"#EXTINF") >= segments:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"no playlist with {segments} segments at {url}")


def summary(name: str, samples: list[list[float]], stalls: int) -> str:
    values = sorted(latency for _, latency in samples)
    if not values:
        return f"{name:8} no frame decoded"
    p90 = values[int(0.9 * (len(values) - 1))]
    return (
        f"{name:8} {statistics.median(values) / 1000:6.2f} s median  {values[0] / 1000:6.2f} s min  "
        f"{p90 / 1000:6.2f} s p90  {values[-1] / 1000:6.2f} s max  ({len(values)} frames, {stalls} stalls)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured after the warm-up")
    parser.add_argument("--part", type=float, default=DEFAULTS.llhls_part_duration, help="LL-HLS part target (s)")
    parser.add_argument(
        "--llhls-segment", type=float, default=DEFAULTS.llhls_segment_duration, help="LL-HLS segment duration (s)"
    )
    parser.add_argument("--hls-segment", type=float, default=4.0, help="HLS segment duration (s)")
    args = parser.parse_args()
    assert Path(CHROMIUM).exists(), f"Chromium is missing at {CHROMIUM}"

    llhls = {}  # the platform's defaults unless told otherwise
    if args.part != DEFAULTS.llhls_part_duration:
        llhls["llhls_part_duration"] = args.part
    if args.llhls_segment != DEFAULTS.llhls_segment_duration:
        llhls["llhls_segment_duration"] = args.llhls_segment
    script = ENGINE.format(root=str(ROOT), hls=args.hls_segment, llhls=llhls)
    engine = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    stop = threading.Event()
    encoder = None
    try:
        _, rtmp_port, http_port = engine.stdout.readline().split()
        encoder = publish(f"rtmp://127.0.0.1:{rtmp_port}/app/clock", stop)
        base = f"http://127.0.0.1:{http_port}/app/clock"
        wait_playlist(f"{base}/chunklist_0_video_llhls.m3u8", 2)
        wait_playlist(f"{base}/ts:playlist.m3u8", 3)
        chunklist = urllib.request.urlopen(f"{base}/chunklist_0_video_llhls.m3u8", timeout=5).read().decode()
        print(
            " ".join(line for line in chunklist.splitlines() if line.startswith(("#EXT-X-PART-INF", "#EXT-X-SERVER")))
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
            )
            pages = {}
            for name, (playlist, config, _) in PLAYERS.items():
                page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
                page.set_content(PAGE.format(w=WIDTH, h=HEIGHT))
                page.add_script_tag(path=str(HLS_JS))
                page.evaluate(PLAYER, [f"{base}/{playlist}", config, [BITS, CELL, ROW_HEIGHT, LEFT, TOP]])
                pages[name] = page
            print(f"warming up {WARM_UP:.0f} s, then measuring {args.duration:.0f} s...", flush=True)
            time.sleep(WARM_UP)
            since = time.time() * 1000
            time.sleep(args.duration)
            version = (HLS_JS.parent / "VERSION").read_text().split()[1]
            print(
                f"glass-to-glass latency, {WIDTH}x{HEIGHT}@{FPS} x264 zerolatency GOP 1 s, loopback, hls.js {version}:"
            )
            for name, page in pages.items():
                samples = [s for s in page.evaluate("() => window.samples") if s[0] >= since]
                stalls = page.evaluate("() => window.stalls")
                estimate = page.evaluate("() => [hls.latency, hls.targetLatency]")
                settings = PLAYERS[name][2].format(part=args.part, llhls=args.llhls_segment, hls=args.hls_segment)
                print(f"  {summary(name, samples, stalls)}  [{settings}; hls.js: latency {estimate[0]:.2f} s, "
                      f"target {estimate[1]:.2f} s]")  # fmt: skip
            browser.close()
    finally:
        stop.set()
        if encoder is not None:
            encoder.wait(timeout=10)
        os.killpg(engine.pid, signal.SIGTERM)
        engine.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
