"""WCS REST API v2 with the real stack: ffmpeg publishes, a Celery worker does the media, ffprobe
judges: /stream/snapshot decodes as a picture of the stream's size, /push/startup reaches
nginx-rtmp (and /push/mute, /push/sound_on change its audio, by volumedetect), /vod/startup and /mpegts/startup make streams that play over HLS, /rtsp/startup pulls
GStreamer's RTSP server, and /stream/event/send reaches a WebSocket subscriber."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import threading
import time

import aiohttp
import pytest
import requests

from tests.conftest import OME_AUTH
from tests.integration.conftest import free_port, wait_for
from tests.integration.test_engine import codecs, ffprobe, live_names, publish, wait_live
from tests.tools.audio import levels, make_wav

pytestmark = pytest.mark.services


def wcs(platform, method: str, body: dict | None = None, timeout: float = 20) -> requests.Response:
    return requests.post(f"{platform.url}/rest-api/{method}", json=body or {}, timeout=timeout)


def stream_names(platform) -> list[str]:
    response = wcs(platform, "stream/find_all")
    return [stream["name"] for stream in response.json()] if response.status_code == 200 else []


def test_snapshot_is_the_current_picture(live_platform, tmp_path):
    publisher = publish(live_platform, "snap", seconds=40)
    try:
        wait_live(live_platform, "snap", publisher)
        wait_for(lambda: "snap" in stream_names(live_platform), 10)
        response = wcs(live_platform, "stream/snapshot", {"streamName": "snap"})
        assert response.status_code == 200, response.text
        picture = tmp_path / "snap.jpg"
        picture.write_bytes(base64.b64decode(response.json()["data"]))
        video = codecs(ffprobe(str(picture)))["video"]
        assert (video["codec_name"], video["width"], video["height"]) == ("mjpeg", 640, 360)
    finally:
        publisher.kill()


def test_push_startup_reaches_nginx_rtmp(live_platform, nginx_rtmp):
    publisher = publish(live_platform, "relay", seconds=80)
    try:
        wait_live(live_platform, "relay", publisher)
        response = wcs(live_platform, "push/startup", {"streamName": "relay", "rtmpUrl": f"{nginx_rtmp}/relayed"})
        assert response.status_code == 200, response.text
        transponder = response.json()
        wait_for(lambda: wcs(live_platform, "push/find_all").json()[0]["status"] == "PROCESSED_LOCAL", 30)
        streams = codecs(ffprobe(f"{nginx_rtmp}/relayed"))
        assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
        mean, _ = levels(f"{nginx_rtmp}/relayed")
        assert -30 < mean < -15, f"the publisher's tone (sine at 1/8) passes: {mean} dB"
        session = {"mediaSessionId": transponder["mediaSessionId"]}

        assert wcs(live_platform, "push/mute", session).status_code == 200
        time.sleep(2)
        _, peak = levels(f"{nginx_rtmp}/relayed")
        assert peak < -70, f"/push/mute leaves silence: max {peak} dB"

        media = live_platform.folder / "media"
        media.mkdir(exist_ok=True)
        make_wav(media / "announce.wav", 1000, 1.0)
        sound = {**session, "soundFile": "announce.wav", "loop": True}
        assert wcs(live_platform, "push/sound_on", sound).status_code == 200
        time.sleep(2)
        mean, peak = levels(f"{nginx_rtmp}/relayed")
        assert mean > -10, f"/push/sound_on mixes the WAV in: mean {mean} dB"
        assert wcs(live_platform, "push/sound_off", session).status_code == 200
        assert wcs(live_platform, "push/unmute", session).status_code == 200
        time.sleep(2)
        mean, _ = levels(f"{nginx_rtmp}/relayed")
        assert -30 < mean < -15, f"back to the publisher's tone: {mean} dB"
        assert wcs(live_platform, "push/find_all").json()[0]["status"] == "PROCESSED_LOCAL", "no reconnection"
        assert (
            wcs(live_platform, "push/terminate", {"mediaSessionId": transponder["mediaSessionId"]}).status_code == 200
        )
    finally:
        publisher.kill()


def test_vod_startup_plays_a_media_file_as_a_live_stream(live_platform):
    media = live_platform.folder / "media"
    media.mkdir(exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=480x270:rate=25", "-f", "lavfi",
         "-i", "sine", "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
         "-c:a", "aac", str(media / "clip.mp4")],
        check=True,
    )  # fmt: skip
    body = {"uri": "vod-live://clip.mp4", "localStreamName": "vodclip", "loop": True}
    assert wcs(live_platform, "vod/startup", body).status_code == 200
    wait_for(lambda: "vodclip" in live_names(live_platform), 20, lambda: live_platform.log("worker")[-3000:])
    video = codecs(ffprobe(f"{live_platform.media}/app/vodclip/ts:playlist.m3u8"))["video"]
    assert (video["width"], video["height"]) == (480, 270)
    time.sleep(4)  # past the end of the 3 s file: the loop keeps the stream live
    assert "vodclip" in live_names(live_platform)
    [vod] = wcs(live_platform, "vod/find", {"localStreamName": "vodclip"}).json()
    assert vod["uri"] == "vod-live://clip.mp4" and vod["status"] == "PUBLISHING"
    assert wcs(live_platform, "vod/terminate", {"localStreamName": "vodclip"}).status_code == 200
    wait_for(lambda: "vodclip" not in live_names(live_platform), 15)


def test_mpegts_startup_takes_an_ffmpeg_udp_stream(live_platform):
    answer = wcs(live_platform, "mpepts/startup", {"localStreamName": "tsin", "transport": "udp"})
    assert answer.status_code == 200, answer.text
    uri = answer.json()["uri"]
    # The address the caller reached the API at, and no PUBLISHING before a byte arrived.
    assert uri.startswith("udp://127.0.0.1:") and answer.json()["status"] == "CONNECTED"
    time.sleep(1)  # the worker opens the port
    [waiting] = wcs(live_platform, "mpegts/find", {"uri": uri}).json()
    assert waiting["status"] == "CONNECTED"
    sender = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi",
         "-i", "sine", "-t", "30", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-f", "mpegts", f"{uri}?pkt_size=1316"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: "tsin" in live_names(live_platform), 25, lambda: live_platform.log("worker")[-3000:])
        video = codecs(ffprobe(f"{live_platform.media}/app/tsin/ts:playlist.m3u8"))["video"]
        assert (video["codec_name"], video["width"]) == ("h264", 320)
        [publishing] = wcs(live_platform, "mpegts/find", {"uri": uri}).json()
        assert publishing["status"] == "PUBLISHING"
        assert wcs(live_platform, "mpegts/terminate", {"localStreamName": "tsin"}).status_code == 200
        wait_for(lambda: "tsin" not in live_names(live_platform), 15)
    finally:
        sender.kill()


def test_rtsp_startup_pulls_a_camera(live_platform, rtsp_source):
    camera = rtsp_source()
    assert wcs(live_platform, "rtsp/startup", {"uri": camera.url, "localStreamName": "wcscam"}).status_code == 200
    wait_for(lambda: "wcscam" in live_names(live_platform), 20, lambda: live_platform.log("worker")[-3000:])
    [agent] = wcs(live_platform, "rtsp/find", {"uri": camera.url}).json()
    assert agent["localStreamName"] == "wcscam"
    assert wcs(live_platform, "rtsp/terminate", {"uri": camera.url}).status_code == 200
    wait_for(lambda: "wcscam" not in live_names(live_platform), 15)


def test_a_dead_camera_stays_findable_as_failed_with_the_reason(live_platform):
    dead = f"rtsp://127.0.0.1:{free_port()}/live"  # nothing listens: connection refused
    assert wcs(live_platform, "rtsp/startup", {"uri": dead, "localStreamName": "deadcam"}).status_code == 200

    def failed():
        response = wcs(live_platform, "rtsp/find", {"localStreamName": "deadcam"})
        return response.status_code == 200 and response.json()[0]["status"] == "FAILED" and response.json()[0]

    agent = wait_for(failed, 40, lambda: live_platform.log("worker")[-3000:])
    assert agent["uri"] == dead and agent["error"].startswith("Failed to pull provided URL")
    assert [a["status"] for a in wcs(live_platform, "rtsp/find_all").json()] == ["FAILED"]
    assert wcs(live_platform, "rtsp/terminate", {"localStreamName": "deadcam"}).status_code == 200  # dismissed
    assert wcs(live_platform, "rtsp/find", {"localStreamName": "deadcam"}).status_code == 404


def test_hls_terminate_stops_the_streams_hls_until_startup(live_platform):
    publisher = publish(live_platform, "hlsoff", seconds=60)
    playlist = f"{live_platform.media}/app/hlsoff/ts:playlist.m3u8"
    try:
        wait_live(live_platform, "hlsoff", publisher)
        wait_for(lambda: requests.get(playlist, timeout=5).status_code == 200, 20)
        assert wcs(live_platform, "hls/terminate", {"name": "hlsoff"}).status_code == 200
        wait_for(lambda: requests.get(playlist, timeout=5).status_code == 404, 10)
        assert wcs(live_platform, "hls/find_all").status_code == 404
        assert "hlsoff" in live_names(live_platform), "the stream itself stays live"
        assert wcs(live_platform, "hls/startup", {"name": "hlsoff"}).status_code == 200
        wait_for(lambda: requests.get(playlist, timeout=5).status_code == 200, 20)
        assert codecs(ffprobe(playlist))["video"]["codec_name"] == "h264"
    finally:
        publisher.kill()


def test_stream_event_send_reaches_websocket_subscribers(live_platform):
    received: list[dict] = []
    ready = threading.Event()

    async def listen() -> None:
        url = live_platform.url.replace("http", "ws") + "/ws/events/"
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, headers={"Authorization": OME_AUTH}) as socket_:
                ready.set()
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline and not any(e["event"] == "data" for e in received):
                    message = await socket_.receive(timeout=deadline - time.monotonic())
                    if message.type == aiohttp.WSMsgType.TEXT:
                        received.append(json.loads(message.data))

    listener = threading.Thread(target=lambda: asyncio.run(listen()))
    listener.start()
    assert ready.wait(10)
    publisher = publish(live_platform, "eventful", seconds=40)
    try:
        wait_live(live_platform, "eventful", publisher)
        payload = {"message": "hello subscribers", "n": 7}
        assert (
            wcs(live_platform, "stream/event/send", {"streamName": "eventful", "payload": payload}).status_code == 200
        )
        listener.join(timeout=45)
    finally:
        publisher.kill()
    data = [event for event in received if event["event"] == "data"]
    assert data and data[0]["payload"] == payload and data[0]["stream"]["name"] == "eventful"


def test_connected_clients_get_data_log_levels_and_can_be_disconnected(live_platform):
    received: list[dict] = []
    connected = threading.Event()
    closed: list[int] = []

    async def client() -> None:
        url = live_platform.url.replace("http", "ws") + "/ws/events/?appKey=defaultApp&clientVersion=2.0.1"
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, headers={"Authorization": OME_AUTH}) as socket_:
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline:
                    message = await socket_.receive(timeout=deadline - time.monotonic())
                    if message.type != aiohttp.WSMsgType.TEXT:
                        closed.append(socket_.close_code)
                        return
                    received.append(json.loads(message.data))
                    if received[-1]["event"] == "connected":
                        connected.set()

    listener = threading.Thread(target=lambda: asyncio.run(client()))
    listener.start()
    assert connected.wait(10)
    session_id = received[0]["sessionId"]
    [connection] = wcs(live_platform, "connection/find_all").json()
    assert (connection["sessionId"], connection["appKey"], connection["clientVersion"]) == (
        session_id, "defaultApp", "2.0.1"
    )  # fmt: skip
    assert wcs(live_platform, "connection/find", {"appKey": "defaultApp"}).json()[0]["sessionId"] == session_id
    payload = {"text": "for you only", "n": 3}
    body = {"sessionId": session_id, "operationId": "op-1", "payload": payload}
    assert wcs(live_platform, "data/send", body).status_code == 200
    level = {"sessionId": session_id, "logLevel": "DEBUG"}
    assert wcs(live_platform, "logger/enable_client_log", level).status_code == 200
    wait_for(lambda: any(event["event"] == "logLevel" for event in received), 10)
    assert wcs(live_platform, "connection/find", {"sessionId": session_id}).json()[0]["logLevel"] == "DEBUG"
    assert wcs(live_platform, "connection/terminate", {"sessionId": session_id}).status_code == 200
    listener.join(timeout=15)
    assert closed, "the server did not close the socket"
    assert {"event": "data", "operationId": "op-1", "payload": payload} in received
    assert {"event": "logLevel", "logLevel": "DEBUG"} in received
    assert wcs(live_platform, "connection/find_all").status_code == 404
