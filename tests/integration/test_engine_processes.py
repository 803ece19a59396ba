"""`runengine --processes 2`: two engine worker processes behind the same public RTMP and media HTTP
ports. ffmpeg publishes ten streams (the kernel spreads them over both workers); whichever worker a
player's connection lands on, HLS and LL-HLS show one set of segments and ffprobe reads them, RTMP
plays, WHEP plays in Chromium, the APIs count the viewers, a record and a push of a stream of each
worker work, and a killed worker loses its streams only and comes back. Publishes of one key at once
(RTMP, WHIP, SRT, mixed) on both workers pass once: each claims its key in the database first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime

import aiohttp
import pytest
import requests

from tests.integration.conftest import LiveStreamHub, wait_for
from tests.integration.test_engine import codecs, ffprobe, live_names
from tests.integration.test_push import push_state
from tests.integration.test_recording import duration, record_state
from tests.integration.test_srt import publish_srt
from tests.integration.test_wcs import wcs
from tests.media_engine.webrtc.test_signalling import SDP, browser_like_offer

# Ten publishers and two engine workers start on machines that run other suites too: room for the set-up.
pytestmark = [pytest.mark.services, pytest.mark.timeout(900)]
APP = "/v1/vhosts/default/apps/app"
NAMES = [f"multi{i}" for i in range(10)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Twenty seconds of H.264 (1 s GOP) + AAC, published with -c copy: ten publishers cost no encoding."""
    path = tmp_path_factory.mktemp("clip") / "clip.flv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi",
         "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2", "-t", "20", "-c:v", "libx264",
         "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
         str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


def publish_clip(platform, clip, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-c", "copy", "-f", "flv",
         f"{platform.rtmp}/app/{name}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.fixture(scope="module")
def workers_platform(tmp_path_factory, redis_url, clip):
    server = LiveStreamHub(tmp_path_factory.mktemp("processes"), redis_url)
    server.env["STREAMHUB_ENGINE_PROCESSES"] = "2"
    server.env["STREAMHUB_WEBRTC_ICE_ADDRESSES"] = "127.0.0.1"
    server.env["STREAMHUB_WEBRTC_KEYFRAME_INTERVAL"] = "1"
    publishers: dict[str, subprocess.Popen] = {}
    try:
        yield from _started(server, clip, publishers)
    finally:  # (a set-up that failed half-way leaves no process behind either)
        for publisher in publishers.values():
            publisher.kill()
        server.stop()


def _started(server, clip, publishers):
    server.start(worker=True)
    server._spawn("engine", [sys.executable, "manage.py", "runengine", "--rtmp-host", "127.0.0.1",
                             "--rtmp-port", str(server.rtmp_port), "--http-host", "127.0.0.1",
                             "--http-port", str(server.media_port)])  # fmt: skip
    # (Two Django processes starting at once on a busy machine: more patience than for one.)
    # Both workers up (each has its row) before anyone publishes.
    wait_for(lambda: len(worker_nodes(server)) == 2, 300, lambda: server.log("engine")[-3000:])
    wait_for(lambda: all(n["public_http"] for n in worker_nodes(server).values()), 60, lambda: server.log("engine"))
    response = server.api("PATCH", APP, json={"publishers": {"hls": {"segmentDuration": 1, "segmentCount": 5}}})
    assert response.status_code == 200
    publishers.update({name: publish_clip(server, clip, name) for name in NAMES})
    server.publishers = publishers
    wait_for(lambda: set(NAMES) <= set(live_names(server)), 60, lambda: server.log("engine")[-3000:])
    time.sleep(2.5)  # the engines' application cache (1 s segments)
    yield server


def query(platform, sql: str) -> list[tuple]:
    """Rows of ``sql`` on the platform's database, read directly (a Django shell per poll is too slow)."""
    url = platform.env["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)) as connection:
            return connection.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchall()


def _age(heartbeat) -> float:
    if isinstance(heartbeat, str):  # SQLite: UTC without a zone
        heartbeat = datetime.fromisoformat(heartbeat).replace(tzinfo=UTC)
    return (datetime.now(UTC) - heartbeat).total_seconds()


def worker_nodes(platform) -> dict[str, dict]:
    rows = query(
        platform,
        "SELECT node_id, rtmp_port, media_http_port, public_media_http_port, last_heartbeat FROM engine_enginenode",
    )
    return {
        node: {"rtmp": rtmp, "http": http, "public_http": public_http, "alive": _age(heartbeat) < 15}
        for node, rtmp, http, public_http, heartbeat in rows
    }


def holders(platform) -> dict[str, str]:
    """Live stream name -> node id of the worker holding it."""
    rows = query(
        platform,
        "SELECT s.name, n.node_id FROM streams_stream s JOIN engine_enginenode n ON n.id = s.node_id "
        "WHERE s.state = 'live'",
    )
    return dict(rows)


def fresh_get(url: str, headers: dict | None = None) -> requests.Response:
    """A GET on a connection of its own (the kernel may give it to either worker)."""
    with requests.Session() as session:
        return session.get(url, timeout=20, headers={"Connection": "close", **(headers or {})})


def media_playlist(text: str) -> tuple[int, list[str]]:
    sequence = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))
    return sequence, [line for line in text.splitlines() if line and not line.startswith("#")]


def test_both_workers_hold_streams_and_record_their_private_ports(workers_platform):
    nodes = worker_nodes(workers_platform)
    base = workers_platform.env["STREAMHUB_NODE_ID"]
    assert set(nodes) == {f"{base}.0", f"{base}.1"}
    for node in nodes.values():
        assert node["alive"] and node["public_http"] == workers_platform.media_port
        assert node["http"] != workers_platform.media_port  # its private port
        assert requests.get(f"http://127.0.0.1:{node['http']}/", timeout=10).status_code == 200
    held = holders(workers_platform)
    assert set(NAMES) <= set(held)
    assert {held[name] for name in NAMES} == set(nodes), held  # ten publishes landed on both workers


def test_hls_shows_one_set_of_segments_on_every_connection(workers_platform, tmp_path):
    for name in NAMES:
        url = f"{workers_platform.media}/app/{name}/ts:playlist.m3u8"
        answers = [fresh_get(url) for _ in range(6)]
        assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
        playlists = [media_playlist(answer.text) for answer in answers]
        # One packager: a given media sequence number names the same segment on every connection.
        by_sequence: dict[int, str] = {}
        for sequence, segments in playlists:
            for offset, segment in enumerate(segments):
                assert by_sequence.setdefault(sequence + offset, segment) == segment, playlists
        # The newest segment, fetched at once (the 5 s window moves on while a busy machine starts ffprobe).
        newest = fresh_get(f"{workers_platform.media}/app/{name}/{playlists[-1][1][-1]}")
        assert newest.status_code == 200
        path = tmp_path / f"{name}.ts"
        path.write_bytes(newest.content)
        assert set(codecs(ffprobe(str(path)))) == {"video", "audio"}


def test_llhls_shows_one_set_of_parts_on_every_connection(workers_platform):
    for name in NAMES[:4]:
        master = fresh_get(f"{workers_platform.media}/app/{name}/llhls.m3u8")
        assert master.status_code == 200, master.text
        chunklist = next(line for line in master.text.splitlines() if line.endswith(".m3u8"))
        url = f"{workers_platform.media}/app/{name}/{chunklist}"
        answers = [fresh_get(url) for _ in range(6)]
        assert all(answer.status_code == 200 for answer in answers)
        maps = {re.search(r'#EXT-X-MAP:URI="([^"]+)"', answer.text).group(1) for answer in answers}
        assert len(maps) == 1, maps  # one packager's initialization segment
        sequence, _ = media_playlist(answers[-1].text)
        # A blocking reload for the next part is answered (held by the holder, through the sibling).
        blocked = fresh_get(f"{url}?_HLS_msn={sequence + 1}&_HLS_part=0")
        assert blocked.status_code == 200 and "#EXT-X-PART" in blocked.text
        probe = ffprobe(f"{workers_platform.media}/app/{name}/llhls.m3u8")
        assert set(codecs(probe)) == {"video", "audio"}


def test_the_holder_counts_the_hls_viewer_that_a_sibling_passed_on(workers_platform):
    # Ten fetches on new connections: about half pass through the other worker.
    agent = "multiproc-viewer/1.0"
    for _ in range(10):
        assert fresh_get(f"{workers_platform.media}/app/multi1/ts:playlist.m3u8", headers={"User-Agent": agent}).ok

    def subscribers():
        answer = wcs(workers_platform, "hls/subscribers", {"hlsId": "multi1"})
        return answer.json() if answer.status_code == 200 else []

    viewers = wait_for(lambda: [v for v in subscribers() if v["userAgent"] == agent], 15, lambda: str(subscribers()))
    assert viewers[0]["ip"] == "127.0.0.1"
    stats = workers_platform.api("GET", f"{APP}/streams/multi1").json()["response"]
    assert stats["name"] == "multi1"
    current = workers_platform.api("GET", "/v1/stats/current/vhosts/default/apps/app/streams/multi1").json()
    assert current["response"]["totalBytesIn"] > 0
    [found] = wcs(workers_platform, "stream/find", {"name": "multi1"}).json()
    assert found["name"] == "multi1" and found["status"] == "PUBLISHING"


def test_rtmp_plays_from_the_public_port_whichever_worker_answers(workers_platform):
    for name in NAMES[:4]:
        for _ in range(3):
            streams = codecs(ffprobe(f"{workers_platform.rtmp}/app/{name}"))
            assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"


def test_a_second_publish_of_a_live_name_is_refused_on_either_worker(workers_platform, clip):
    for _ in range(3):
        result = subprocess.run(
            ["ffmpeg", "-v", "error", "-re", "-i", str(clip), "-t", "3", "-c", "copy", "-f", "flv",
             f"{workers_platform.rtmp}/app/multi2"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode != 0 and "already publishing" in result.stderr
    assert workers_platform.publishers["multi2"].poll() is None  # the first publisher goes on


def test_two_publishes_of_one_key_at_the_same_moment_pass_once(workers_platform, clip):
    """Pairs of ffmpeg publishers of one new key start together; the kernel gives a pair to both workers
    about every other time. Exactly one of each pair is accepted (the other is refused as any publish of
    a live key is), it stays the stream's one holder and plays; its claim goes with it."""
    log_start = len(workers_platform.log("engine"))
    across = 0
    for wave in range(5):
        names = [f"race{wave}x{index}" for index in range(6)]
        pairs = {name: [publish_clip(workers_platform, clip, name) for _ in range(2)] for name in names}
        try:
            for name, pair in pairs.items():
                ended = wait_for(
                    lambda pair=pair: [p for p in pair if p.poll() is not None],
                    60,
                    lambda name=name: f"neither publish of {name} was refused",
                )
                assert len(ended) == 1, f"both publishes of {name} ended"
                assert "already publishing" in ended[0].stderr.read().decode(errors="replace")
            wait_for(lambda names=names: set(names) <= set(holders(workers_platform)), 60)
            time.sleep(1)  # (a second accepted publish would take the row over now)
            assert all(any(p.poll() is None for p in pair) for pair in pairs.values())  # the accepted ones go on
            assert set(names) <= set(live_names(workers_platform))
            streams = codecs(ffprobe(f"{workers_platform.rtmp}/app/{names[wave % len(names)]}"))
            assert set(streams) == {"video", "audio"}
        finally:
            for pair in pairs.values():
                for publisher in pair:
                    publisher.kill()
                    publisher.wait()
        log = workers_platform.log("engine")[log_start:]
        across = sum(1 for line in log.splitlines() if "race" in line and "published on another node" in line)
        if across >= 2:
            break
    assert across >= 2, "no pair landed on both workers"  # (the race above was run between workers)
    # The claims went with their publishers: a key is published again, on whichever worker.
    claims = "SELECT count(*) FROM engine_publishclaim WHERE name LIKE 'race%'"
    wait_for(lambda: query(workers_platform, claims) == [(0,)], 60, lambda: str(query(workers_platform, claims)))
    again = publish_clip(workers_platform, clip, "race0x0")
    try:
        wait_for(lambda: "race0x0" in holders(workers_platform), 60, lambda: workers_platform.log("engine")[-2000:])
    finally:
        again.kill()
        again.wait()


def claims_of(platform, pattern: str) -> int:
    return query(platform, f"SELECT count(*) FROM engine_publishclaim WHERE name LIKE '{pattern}'")[0][0]


def refused_across(platform, log_start: int, protocol: str, names) -> set[str]:
    """Which of ``names`` a ``protocol`` publish was refused for because the other worker claimed it."""
    lines = [
        line
        for line in platform.log("engine")[log_start:].splitlines()
        if f"{protocol} " in line and "published on another node" in line
    ]
    return {name for name in names if any(f"/app/{name} is" in line for line in lines)}


async def whip_posts(
    media: str, names: list[str], copies: int = 2, just_before=None
) -> dict[str, list[tuple[int, str, str]]]:
    """POST ``copies`` WHIP offers (aiortc, tracks without media) for each name, all at the same moment
    (right after ``just_before()``, once the offers are made), each on a connection of its own (the
    kernel gives each to either worker): name -> [(status, body, Location)]."""
    offers = {name: [await browser_like_offer(direction="sendonly") for _ in range(copies)] for name in names}
    if just_before is not None:
        just_before()

    async def post(http: aiohttp.ClientSession, name: str, offer: str) -> tuple[int, str, str]:
        async with http.post(f"{media}/app/{name}?direction=whip", data=offer, headers=SDP) as response:
            return response.status, await response.text(), response.headers.get("Location", "")

    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), timeout=timeout) as http:
            answers = await asyncio.gather(*(post(http, name, sdp) for name in names for _, sdp in offers[name]))
    finally:
        for pairs in offers.values():
            for pc, _ in pairs:
                await pc.close()
    return {name: answers[index * copies : (index + 1) * copies] for index, name in enumerate(names)}


def end_whip_sessions(platform, locations: list[str]) -> None:
    for location in locations:  # (whichever worker takes the DELETE passes it to the session's own)
        status = requests.delete(f"{platform.media}{location}", timeout=20).status_code
        assert status in (200, 404), location  # (404: ended already, its ICE never connecting in 30 s)


def test_two_whip_publishes_of_one_key_at_the_same_moment_pass_once(workers_platform):
    """Pairs of WHIP offers of one new key sent together: exactly one is answered 201, the other 409 as
    any WHIP publish of a live key is, whether the pair landed on one worker or on both; the key is
    published again once the winner's session ends."""
    log_start = len(workers_platform.log("engine"))
    winners: list[str] = []
    across: set[str] = set()
    try:
        for wave in range(5):
            names = [f"whiprace{wave}x{index}" for index in range(6)]
            answers = asyncio.run(whip_posts(workers_platform.media, names))
            for name, pair in answers.items():
                winners += [location for status, _, location in pair if status == 201]
                assert sorted(status for status, _, _ in pair) == [201, 409], (name, pair)
                assert [body for status, body, _ in pair if status == 409] == ["stream is already live\n"]
            across |= refused_across(workers_platform, log_start, "whip", names)
            if len(across) >= 2:
                break
        assert len(across) >= 2, "no pair landed on both workers"  # (the race above was run between workers)
    finally:
        end_whip_sessions(workers_platform, winners)
    wait_for(lambda: claims_of(workers_platform, "whiprace%") == 0, 60, lambda: workers_platform.log("engine")[-2000:])
    ((status, body, location),) = asyncio.run(whip_posts(workers_platform.media, ["whiprace0x0"], copies=1))[
        "whiprace0x0"
    ]
    assert status == 201, body
    end_whip_sessions(workers_platform, [location])


def mixed_wave(platform, clip, names: list[str]) -> None:
    """An RTMP publisher and a WHIP offer of each name, started together: exactly one of each pair wins."""
    rtmp: dict[str, subprocess.Popen] = {}
    answers: dict[str, list[tuple[int, str, str]]] = {}

    def start_rtmp() -> None:
        rtmp.update({name: publish_clip(platform, clip, name) for name in names})

    try:
        answers = asyncio.run(whip_posts(platform.media, names, copies=1, just_before=start_rtmp))
        whip_won = {name for name in names if answers[name][0][0] == 201}
        for name in names:
            if name in whip_won:  # the RTMP publish is refused
                publisher = rtmp[name]
                wait_for(lambda publisher=publisher: publisher.poll() is not None, 60, lambda: "both passed")
                assert "already publishing" in publisher.stderr.read().decode(errors="replace")
            else:
                assert answers[name][0][:2] == (409, "stream is already live\n"), name
        rtmp_won = set(names) - whip_won
        wait_for(lambda: rtmp_won <= set(holders(platform)), 60, lambda: platform.log("engine")[-2000:])
        time.sleep(1)
        assert {name for name in names if rtmp[name].poll() is None} == rtmp_won  # the RTMP winners go on
    finally:
        for publisher in rtmp.values():
            publisher.kill()
            publisher.wait()
        end_whip_sessions(platform, [loc for pair in answers.values() for status, _, loc in pair if status == 201])


def test_an_rtmp_and_a_whip_publish_of_one_key_at_the_same_moment_pass_once(workers_platform, clip):
    """An ffmpeg RTMP publisher and a WHIP offer of one new key start together: either the WHIP offer is
    answered 201 and the RTMP publish refused as already publishing, or the offer is answered 409 and
    the RTMP publisher holds the stream; never both, whichever workers they landed on."""
    log_start = len(workers_platform.log("engine"))
    across: set[str] = set()
    for wave in range(5):
        names = [f"mixrace{wave}x{index}" for index in range(6)]
        mixed_wave(workers_platform, clip, names)
        across |= refused_across(workers_platform, log_start, "rtmp", names)
        across |= refused_across(workers_platform, log_start, "whip", names)
        if len(across) >= 2:
            break
    assert len(across) >= 2, "no pair landed on both workers"
    wait_for(lambda: claims_of(workers_platform, "mixrace%") == 0, 60, lambda: workers_platform.log("engine")[-2000:])


def test_two_srt_publishes_of_one_key_at_once_play_once_and_the_key_is_free_after(workers_platform):
    """SRT ingest runs in worker 0: the second caller is hung up on, as for any SRT publish of a live key."""
    pair = [publish_srt(workers_platform, "default/app/srtrace") for _ in range(2)]
    try:
        ended = wait_for(lambda: [p for p in pair if p.poll() is not None], 60, lambda: "neither was refused")
        assert len(ended) == 1 and ended[0].returncode != 0
        wait_for(lambda: "srtrace" in holders(workers_platform), 60, lambda: workers_platform.log("engine")[-2000:])
        time.sleep(1)
        assert [p.poll() for p in pair].count(None) == 1  # the winner goes on
        assert set(codecs(ffprobe(f"{workers_platform.rtmp}/app/srtrace"))) == {"video", "audio"}
    finally:
        for publisher in pair:
            publisher.kill()
            publisher.wait()
    wait_for(lambda: claims_of(workers_platform, "srtrace") == 0, 60, lambda: workers_platform.log("engine")[-2000:])
    again = publish_srt(workers_platform, "default/app/srtrace")
    try:
        wait_for(lambda: "srtrace" in holders(workers_platform), 60, lambda: workers_platform.log("engine")[-2000:])
    finally:
        again.kill()
        again.wait()


def test_an_srt_publish_of_a_key_the_other_worker_holds_is_refused(workers_platform):
    held = holders(workers_platform)
    name = next(name for name in reversed(NAMES) if held[name].endswith(".1"))  # (SRT ingest runs in worker 0)
    log_start = len(workers_platform.log("engine"))
    publisher = publish_srt(workers_platform, f"default/app/{name}", seconds=20)
    try:
        publisher.wait(timeout=60)  # hung up on: ffmpeg cannot send
    finally:
        publisher.kill()
    assert publisher.returncode != 0
    assert refused_across(workers_platform, log_start, "srt", [name]) == {name}
    assert holders(workers_platform)[name] == held[name] and workers_platform.publishers[name].poll() is None


def test_whep_plays_in_chromium_through_either_worker(workers_platform):
    from playwright.sync_api import sync_playwright

    from tests.integration.conftest import CHROMIUM
    from tests.integration.test_webrtc import WEBRTC_CHROMIUM_ARGS

    held = holders(workers_platform)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=WEBRTC_CHROMIUM_ARGS)
        try:
            # One stream of each worker, each played from a fresh page (its own connections).
            for node in sorted(set(held.values())):
                name = next(n for n in NAMES if held.get(n) == node)
                page = browser.new_page()
                page.goto(f"{workers_platform.media}/")
                page.fill("#stream", name)
                location = page.evaluate("streamhub.play()")
                assert f"/app/{name}/webrtc-session/" in location
                wait_for(
                    lambda page=page: page.evaluate("streamhub.stats()")["framesDecoded"] > 25,
                    40,
                    lambda page=page: str(page.evaluate("streamhub.stats()")) + workers_platform.log("engine")[-2000:],
                )
                # The session's DELETE reaches the worker holding it, whichever worker accepts it.
                page.evaluate("streamhub.stop('whep')")
                url = location if location.startswith("http") else f"{workers_platform.media}{location}"
                assert requests.delete(url, timeout=10).status_code == 404  # ended, whichever worker asked
                page.close()
        finally:
            browser.close()


def test_a_record_and_a_push_of_a_stream_of_each_worker_work(workers_platform, nginx_rtmp):
    held = holders(workers_platform)
    chosen = {}
    for name in NAMES:
        chosen.setdefault(held[name], name)
    assert len(chosen) == 2
    for index, name in enumerate(chosen.values()):
        record = {"id": f"rec{index}", "stream": {"name": name}, "filePath": f"multi/{name}.mp4"}
        assert workers_platform.api("POST", f"{APP}:startRecord", json=record).status_code == 200
        push = {"id": f"push{index}", "stream": {"name": name}, "protocol": "rtmp", "url": nginx_rtmp,
                "streamKey": name}  # fmt: skip
        assert workers_platform.api("POST", f"{APP}:startPush", json=push).status_code == 200
    for index, name in enumerate(chosen.values()):
        wait_for(lambda i=index: record_state(workers_platform, f"rec{i}")["recordTime"] >= 3000, 40,
                 lambda: workers_platform.log("worker")[-3000:])  # fmt: skip
        wait_for(lambda i=index: push_state(workers_platform, f"push{i}")["state"] == "started", 40,
                 lambda: workers_platform.log("worker")[-3000:])  # fmt: skip
        streams = codecs(ffprobe(f"{nginx_rtmp}/{name}"))
        assert streams["video"]["codec_name"] == "h264" and streams["video"]["width"] == 320
    for index, name in enumerate(chosen.values()):
        assert workers_platform.api("POST", f"{APP}:stopRecord", json={"id": f"rec{index}"}).status_code == 200
        assert workers_platform.api("POST", f"{APP}:stopPush", json={"id": f"push{index}"}).status_code == 200
        wait_for(lambda i=index: record_state(workers_platform, f"rec{i}")["state"] == "stopped", 30)
        assert duration(workers_platform.folder / "media" / "multi" / f"{name}.mp4") >= 2.5


def test_a_killed_worker_loses_only_its_streams_and_comes_back(workers_platform):
    held = holders(workers_platform)
    base = workers_platform.env["STREAMHUB_NODE_ID"]
    victim_node = f"{base}.1"
    victims = [name for name in NAMES if held.get(name) == victim_node]
    survivors = [name for name in NAMES if held.get(name) == f"{base}.0"]
    assert victims and survivors
    old_rtmp_port = worker_nodes(workers_platform)[victim_node]["rtmp"]
    pid = int(
        subprocess.run(
            ["pgrep", "-f", f"runengine --node-id {base} .*--worker 1$"], capture_output=True, text=True
        ).stdout.split()[0]
    )
    os.kill(pid, signal.SIGKILL)
    # Its publishers are disconnected and its streams end; the other worker's keep playing.
    wait_for(lambda: not set(victims) & set(live_names(workers_platform)), 30)
    assert set(survivors) <= set(live_names(workers_platform))
    for name in survivors[:3]:
        assert fresh_get(f"{workers_platform.media}/app/{name}/ts:playlist.m3u8").status_code == 200
    # The parent starts it again: a new process with a fresh heartbeat, which takes new publishes.
    wait_for(lambda: "engine worker 1 ended" in workers_platform.log("engine"), 10)
    wait_for(
        lambda: subprocess.run(
            ["pgrep", "-f", f"runengine --node-id {base} .*--worker 1$"], capture_output=True
        ).stdout.split()[:1]
        not in ([], [str(pid).encode()]),
        30,
    )
    # Registered again with new private ports and heartbeating (a Django process starting on a
    # machine under load may take minutes).
    wait_for(
        lambda: (n := worker_nodes(workers_platform)[victim_node])["alive"] and n["rtmp"] != old_rtmp_port,
        240,
        lambda: workers_platform.log("engine")[-2000:],
    )


def test_rtmp_players_on_either_worker_count_in_the_stats(workers_platform):
    # Four players on connections of their own: most land on the worker that mirrors the stream.
    name = next(name for name in NAMES if name in holders(workers_platform))  # (live: not the killed worker's)
    url = f"{workers_platform.rtmp}/app/{name}"
    players = [
        subprocess.Popen(
            [
                "ffmpeg",
                "-v",
                "error",
                "-rw_timeout",
                "10000000",
                "-i",
                url,
                "-t",
                "25",
                "-c",
                "copy",
                "-f",
                "null",
                "-",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(4)
    ]
    try:

        def rtmp_players():
            current = workers_platform.api("GET", f"/v1/stats/current/vhosts/default/apps/app/streams/{name}").json()
            return current["response"]["connections"].get("rtmp", 0)

        # The holder's row counts its own players and those the sibling reports (not the mirror's pull).
        wait_for(lambda: rtmp_players() == 4, 20, lambda: f"rtmp players: {rtmp_players()}")
    finally:
        for player in players:
            player.kill()
    wait_for(lambda: rtmp_players() == 0, 30, lambda: f"rtmp players: {rtmp_players()}")
