"""LL-HLS on the real platform: the application's LL-HLS settings reach the engine, blocking reload, Chromium with
hls.js in low-latency mode plays for 20 s, an OME :sendEvent reaches the player (emsg ID3) and the HLS output
(timed_id3, judged by ffprobe), and an HLS dump folder plays back as VOD with ffprobe.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import m3u8
import pytest
import requests

from media_engine.hls.fmp4 import id3_tag, id3_text_frame, id3_txxx_frame
from tests.integration.conftest import ARTIFACTS, log_in, wait_for
from tests.integration.test_engine import codecs, ffprobe, publish, wait_live

pytestmark = pytest.mark.services

# The spec's :sendEvent body, and the ID3 tag it makes.
EVENT = {
    "eventFormat": "id3v2",
    "eventType": "video",
    "events": [
        {"frameType": "TXXX", "info": "AirenSoft", "data": "OvenMediaEngine"},
        {"frameType": "TIT2", "data": "OvenMediaEngine 123"},
    ],
}
EVENT_TAG = id3_tag([id3_txxx_frame("AirenSoft", "OvenMediaEngine"), id3_text_frame("TIT2", "OvenMediaEngine 123")])
PLAY_SECONDS = 20


@pytest.fixture(scope="module", autouse=True)
def short_segments(live_platform):
    # 2 s LL-HLS segments of 0.5 s parts (OME's names), 1 s HLS segments: short tests, and the mapping shown.
    publishers = {
        "llhls": {"chunkDuration": 0.5, "segmentDuration": 2, "segmentCount": 5},
        "hls": {"segmentDuration": 1, "segmentCount": 5},
    }
    response = live_platform.api("PATCH", "/v1/vhosts/default/apps/app", json={"publishers": publishers})
    assert response.status_code == 200
    time.sleep(2.5)  # the engine's application cache


def chunklist_url(platform, name: str) -> str:
    master_url = f"{platform.media}/app/{name}/llhls.m3u8"
    master = wait_for(lambda: _ok(master_url), 20)
    variants = m3u8.loads(master.text).playlists
    assert len(variants) == 1 and "avc1." in variants[0].stream_info.codecs
    return f"{platform.media}/app/{name}/{variants[0].uri}"


def _ok(url: str) -> requests.Response | None:
    response = requests.get(url, timeout=10)
    return response if response.status_code == 200 else None


def last_part(playlist: m3u8.M3U8) -> tuple[int, int]:
    """(msn, index) of the newest part listed."""
    msn = playlist.media_sequence + len(playlist.segments) - 1
    parts = playlist.segments[-1].parts
    if not parts:  # the newest segment has just been opened
        return msn - 1, len(playlist.segments[-2].parts) - 1
    return msn, len(parts) - 1


def test_llhls_blocking_reload_and_low_latency_playback_with_an_id3_event(live_platform, browser_page):
    publisher = publish(live_platform, "lowlat", seconds=60)
    try:
        wait_live(live_platform, "lowlat", publisher)
        url = chunklist_url(live_platform, "lowlat")

        # The application's settings, in a playlist that a real parser reads.
        playlist = m3u8.loads(requests.get(url, timeout=10).text)
        assert playlist.server_control.can_block_reload == "YES"
        assert float(playlist.part_inf.part_target) == 0.5 and playlist.target_duration == 2
        assert float(playlist.server_control.part_hold_back) >= 1.5
        assert playlist.preload_hint.hint_type == "PART"

        # Blocking reload: the request for the next part is answered once it exists, within about a part.
        msn, index = last_part(playlist)
        started = time.monotonic()
        blocked = requests.get(url, params={"_HLS_msn": msn, "_HLS_part": index + 1}, timeout=10)
        waited = time.monotonic() - started
        assert blocked.status_code == 200 and waited < 1.0, waited
        assert (msn, index + 1) <= last_part(m3u8.loads(blocked.text))
        for bad in ({"_HLS_part": "1"}, {"_HLS_msn": "x"}, {"_HLS_msn": "-1"}, {"_HLS_msn": str(msn + 10)}):
            assert requests.get(url, params=bad, timeout=10).status_code == 400, bad
        assert requests.get(url.replace("lowlat", "nosuchstream"), timeout=10).status_code == 404

        # Chromium + hls.js in low-latency mode, on the player page of the admin.
        log_in(browser_page, live_platform)
        browser_page.goto(f"{live_platform.url}/admin/streams/stream/?state=live")
        href = browser_page.get_attribute("#result_list a:text('HLS player')", "href")
        browser_page.goto(f"{live_platform.url}{href}?llhls=1")
        assert browser_page.text_content("#hls-url").endswith("/app/lowlat/llhls.m3u8")
        browser_page.wait_for_function("() => player.currentTime > 1 && player.videoWidth > 0", timeout=30_000)
        assert browser_page.evaluate("() => hls.config.lowLatencyMode && hls.levels[0].details.partList.length > 0")

        # An ID3 event sent now reaches the player (emsg before the next part) while it plays.
        response = live_platform.api("POST", "/v1/vhosts/default/apps/app/streams/lowlat:sendEvent", json=EVENT)
        assert response.status_code == 200 and response.json() == {"statusCode": 200, "message": "OK"}

        stalls_before = browser_page.evaluate("() => window.playerStalls.length")
        start_time = browser_page.evaluate("() => player.currentTime")
        start_wall = time.monotonic()
        latencies = []
        while time.monotonic() - start_wall < PLAY_SECONDS:
            time.sleep(1)
            latencies.append(browser_page.evaluate("() => window.playerLatency"))
        played = browser_page.evaluate("() => player.currentTime") - start_time
        elapsed = time.monotonic() - start_wall
        stalls = browser_page.evaluate("() => window.playerStalls")[stalls_before:]
        # Playback keeps pace with real time; one momentary "waiting" is tolerated (CI runs three test
        # processes on two cores), a player that falls behind or stalls again and again is not.
        assert len(stalls) <= 1 and played >= elapsed - 1.0, (played, elapsed, stalls)
        assert browser_page.evaluate("() => player.paused") is False
        latencies = [value for value in latencies if value]
        print(f"hls.js LL-HLS latency estimate over {PLAY_SECONDS} s: {min(latencies):.2f}..{max(latencies):.2f} s")
        # hls.js catches up with the live edge by playing faster: a player that starts behind (a slow
        # start on a loaded machine) must come within 3 s and never drift past 5 s.
        assert max(latencies) < 5.0 and max(latencies[-3:]) < 3.0, latencies

        metadata = browser_page.evaluate("() => window.playerMetadata")
        assert [bytes(sample["bytes"]) for sample in metadata] == [EVENT_TAG], metadata
        assert "OvenMediaEngine 123" in browser_page.text_content("#player-metadata")
        ARTIFACTS.mkdir(exist_ok=True)
        browser_page.screenshot(path=str(ARTIFACTS / "llhls-player.png"))

        # The same event went into the HLS (MPEG-TS) output: ffprobe sees a timed_id3 stream from then on.
        hls_playlist = requests.get(f"{live_platform.media}/app/lowlat/ts:playlist.m3u8", timeout=10).text
        segment = [line for line in hls_playlist.splitlines() if line.endswith(".ts")][-1]
        path = live_platform.folder / "event-segment.ts"
        path.write_bytes(requests.get(f"{live_platform.media}/app/lowlat/{segment}", timeout=10).content)
        streams = ffprobe(str(path))["streams"]
        assert [s["codec_name"] for s in streams if s["codec_type"] == "data"] == ["timed_id3"]
    finally:
        publisher.kill()
        publisher.wait()


def test_send_event_to_a_stream_that_is_not_live_is_404(live_platform):
    response = live_platform.api("POST", "/v1/vhosts/default/apps/app/streams/nobody:sendEvent", json=EVENT)
    assert response.status_code == 404
    assert response.json()["message"] == "[HTTP] Could not find the stream: [default/#default#app/nobody] (404)"


def test_an_hls_dump_folder_plays_back_as_vod(live_platform):
    publisher = publish(live_platform, "dumped", seconds=60)
    media_root = Path(live_platform.env["STREAMHUB_MEDIA_ROOT"])
    folder = media_root / "dumps" / "dumped"
    info = media_root / "dumps" / "dumped.info"
    try:
        wait_live(live_platform, "dumped", publisher)
        chunklist_url(live_platform, "dumped")  # LL-HLS is there
        body = {
            "outputStreamName": "dumped",
            "id": "dump1",
            "outputPath": "dumps/dumped",
            "playlist": ["llhls.m3u8"],
            "infoFile": str(info),
            "userData": "access_key_id='AKIAXFOT7EWH3ZA4XXXX'",
        }
        response = live_platform.api("POST", "/v1/vhosts/default/apps/app/streams/dumped:startHlsDump", json=body)
        assert response.status_code == 200, response.text

        # While live: segments, an EVENT playlist and a Running info file appear.
        wait_for(lambda: len(list(folder.glob("seg_*.m4s"))) >= 4, 30, lambda: live_platform.log("worker")[-3000:])
        running = ET.parse(info).getroot()
        assert running.findtext("Status") == "Running"
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in (folder / "chunklist_0_video_llhls.m3u8").read_text()

        stop = {"outputStreamName": "dumped", "id": "dump1"}
        response = live_platform.api("POST", "/v1/vhosts/default/apps/app/streams/dumped:stopHlsDump", json=stop)
        assert response.status_code == 200 and response.json() == {"statusCode": 200, "message": "OK"}
        wait_for(lambda: ET.parse(info).getroot().findtext("Status") == "Completed", 15)
    finally:
        publisher.kill()
        publisher.wait()

    # The folder: a VOD playlist that a real parser reads, every file it names, the master, the info file.
    chunklist = folder / "chunklist_0_video_llhls.m3u8"
    playlist = m3u8.loads(chunklist.read_text())
    assert playlist.is_endlist and playlist.playlist_type == "vod"
    assert len(playlist.segments) >= 4
    names = {segment.uri for segment in playlist.segments} | {playlist.segments[0].init_section.uri}
    assert names <= {path.name for path in folder.iterdir()}
    assert m3u8.loads((folder / "llhls.m3u8").read_text()).playlists[0].uri == chunklist.name

    root = ET.parse(info).getroot()
    assert root.tag == "HLSDumpInfo" and root.findtext("Stream") == "/default/app/dumped"
    assert root.findtext("UserData") == body["userData"]
    files = [Path(item.findtext("File")) for item in root.iter("Item")]
    assert [int(item.findtext("Seq")) for item in root.iter("Item")] == list(range(len(files)))
    assert all(path.exists() and folder in path.parents for path in files)
    assert {path.name for path in files} >= names

    # ffprobe plays it as VOD: both tracks, the whole duration.
    total = sum(segment.duration for segment in playlist.segments)
    for target in (chunklist, folder / "llhls.m3u8"):
        probe = ffprobe(str(target))
        assert set(codecs(probe)) == {"video", "audio"}
        assert abs(float(probe["format"]["duration"]) - total) < 1.0, (probe["format"]["duration"], total)
