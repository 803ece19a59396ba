"""The HTTP cache tier (deploy/nginx/streamhub-media-cache.conf, Debian's nginx) in front of an engine node: 200
LL-HLS players doing blocking reloads and fetching each preload-hinted part through nginx all get every part,
while the engine sees a few requests per part (its request counts by route); segments through the cache are
valid for ffprobe and answered from the cache the second time.

The engine runs in its own process (as `manage.py runengine` runs the node, on free ports, no database), nginx with
the shipped configuration rendered for free ports and a temporary cache folder, ffmpeg publishes in real time.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest
import requests

from scripts.media_front import nginx_main_config, render_cache_tier
from tests.integration.conftest import ROOT, free_port, wait_for

pytestmark = pytest.mark.services

PLAYERS = 200
PARTS = 10
HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="(part_0_(\d+)_(\d+)_video_[0-9a-f]+_llhls\.m4s)"')

# The engine node with LL-HLS segments of 2 s (0.2 s parts, the default), and its request counts on /_counts.
ENGINE = """
import asyncio, json, sys
sys.path.insert(0, {root!r})
from aiohttp import web
from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.node import EngineNode, NodeAddresses

async def main():
    config = ApplicationConfig("default", "app", hls_segment_duration=2, llhls_segment_duration=2)
    node = EngineNode(StaticControlPlane([config]),
                      NodeAddresses(rtmp_host="127.0.0.1", rtmp_port=0, http_host="127.0.0.1", http_port=0))
    async def counts(request):
        return web.json_response(dict(node.http.requests))
    node.http.add_route("GET", "/_counts", counts)
    await node.start()
    print("ready", node.rtmp.port, node.http.port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def render_cache_conf(folder: Path, listen_port: int, engines: list[int]) -> Path:
    """The shipped configuration for these ports and a cache under ``folder``, inside a main nginx.conf."""
    text = render_cache_tier(f"127.0.0.1:{listen_port}", [f"127.0.0.1:{port}" for port in engines], folder / "cache")
    (folder / "streamhub-media-cache.conf").write_text(text)
    return nginx_main_config(folder, f"include {folder}/streamhub-media-cache.conf;", workers="1")


@pytest.fixture
def engine():
    process = subprocess.Popen(
        [sys.executable, "-c", ENGINE.format(root=str(ROOT))], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, rtmp_port, http_port = process.stdout.readline().split()
        yield int(rtmp_port), int(http_port)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


@pytest.fixture
def cache_tier(engine):
    assert shutil.which("nginx"), "nginx is missing: `make test` installs it"
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="shcache-"))
    config = render_cache_conf(folder, port, [engine[1]])
    check = subprocess.run(["nginx", "-t", "-c", str(config), "-p", str(folder)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(["nginx", "-c", str(config), "-p", str(folder)], stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/"), 10)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
        return True
    except requests.RequestException:
        return False


def publish(rtmp_url: str, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:v", "libx264", "-preset", "ultrafast",
         "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-t", str(seconds),
         "-f", "flv", rtmp_url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


async def player(http: aiohttp.ClientSession, base: str, chunklist: str, parts: int) -> list[str]:
    """An LL-HLS player: the playlist once, then for each part a blocking reload and the preload hint's part at
    the same time (as hls.js does). Returns the names of the parts it got."""
    async with http.get(f"{base}/{chunklist}") as response:
        assert response.status == 200
        playlist = await response.text()
    got = []
    for _ in range(parts):
        name, msn, index = HINT.search(playlist).groups()

        async def fetch(url: str) -> tuple[int, bytes]:
            async with http.get(url) as response:
                return response.status, await response.read()

        (status, body), (part_status, part) = await asyncio.gather(
            fetch(f"{base}/{chunklist}?_HLS_msn={msn}&_HLS_part={index}"), fetch(f"{base}/{name}")
        )
        assert status == 200 and f'URI="{name}"' in body.decode(), (status, name)
        assert part_status == 200 and part[4:8] in (b"moof", b"emsg"), (part_status, name)
        playlist = body.decode()
        got.append(name)
    return got


def test_200_llhls_players_through_the_nginx_cache_cost_the_engine_a_few_requests_per_part(engine, cache_tier):
    rtmp_port, http_port = engine
    publisher = publish(f"rtmp://127.0.0.1:{rtmp_port}/app/cached", 40)
    try:
        base = f"http://127.0.0.1:{cache_tier}/app/cached"
        master = wait_for(lambda: _ok(f"{base}/llhls.m3u8"), 20)
        chunklist = next(line for line in master.text.splitlines() if line.startswith("chunklist_"))
        wait_for(lambda: _ok(f"{base}/{chunklist}") and "#EXTINF" in _ok(f"{base}/{chunklist}").text, 20)
        counts_url = f"http://127.0.0.1:{http_port}/_counts"
        before = requests.get(counts_url, timeout=5).json()

        async def run() -> list[list[str]]:
            connector = aiohttp.TCPConnector(limit=0)
            timeout = aiohttp.ClientTimeout(total=60)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
                return await asyncio.gather(*(player(http, base, chunklist, PARTS) for _ in range(PLAYERS)))

        started = time.monotonic()
        results = asyncio.run(run())
        elapsed = time.monotonic() - started
        after = requests.get(counts_url, timeout=5).json()

        # Every player got every part it asked for: PARTS consecutive parts each.
        assert len(results) == PLAYERS and all(len(parts) == PARTS for parts in results)
        distinct = {name for parts in results for name in parts}
        upstream = {route: after.get(route, 0) - before.get(route, 0) for route in ("llhls_chunklist", "llhls_file")}
        print(f"{PLAYERS} players x {PARTS} parts in {elapsed:.1f} s: {len(distinct)} distinct parts, engine requests "
              f"{upstream} (plain playlists: {PLAYERS})")  # fmt: skip
        # The engine: one plain playlist per player (not cached: the live edge now), then a few requests per part
        # for blocking reloads and parts, not one per player: the lock holder's, and those of players whose wait on
        # the lock (proxy_cache_lock_timeout, 250 ms) ended before the part came (about one per part on a quiet
        # machine; more when a loaded machine makes parts late).
        per_part_playlists = (upstream["llhls_chunklist"] - PLAYERS) / len(distinct)
        per_part_files = upstream["llhls_file"] / len(distinct)
        assert per_part_playlists <= 8 and per_part_files <= 8, upstream

        # A complete segment through the cache: valid for ffprobe, and a cache hit the second time.
        playlist = requests.get(f"{base}/{chunklist}", timeout=10).text
        init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist)[1]
        segment = [line for line in playlist.splitlines() if line.startswith("seg_")][-1]
        first = requests.get(f"{base}/{segment}", timeout=10)
        again = requests.get(f"{base}/{segment}", timeout=10)
        assert first.status_code == again.status_code == 200 and first.content == again.content
        assert "immutable" in first.headers["Cache-Control"] and again.headers["X-Cache-Status"] == "HIT"
        media = requests.get(f"{base}/{init}", timeout=10).content + first.content
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", "-"],
            input=media, capture_output=True, timeout=60,
        )  # fmt: skip
        assert probe.returncode == 0, probe.stderr.decode()
        streams = {stream["codec_type"]: stream for stream in json.loads(probe.stdout)["streams"]}
        assert streams["video"]["codec_name"] == "h264" and int(streams["video"]["nb_read_frames"]) >= 30
        assert streams["audio"]["codec_name"] == "aac"
        # The live stream plays through the cache (ffprobe reads the master, chunklist and segments via nginx).
        live = subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-of", "json", f"{base}/llhls.m3u8"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert live.returncode == 0, live.stderr
        assert {s["codec_type"] for s in json.loads(live.stdout)["streams"]} == {"video", "audio"}
    finally:
        publisher.kill()
        publisher.wait(timeout=10)


def _ok(url: str) -> requests.Response | None:
    try:
        response = requests.get(url, timeout=10)
    except requests.RequestException:
        return None
    return response if response.status_code == 200 else None
