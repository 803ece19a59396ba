"""WCS /call/* with the real stack: a Celery worker's SIP agent (PJSIP) calls sipp, Debian's SIP
tester, playing the far end (answering and sending a tone from a pcap, and H.264 video from
another, re-INVITEing to add or remove video, rejecting with 486, challenging with digest auth). ffprobe and ffmpeg judge the call's audio as a stream and as a
push to nginx-rtmp; a UDP socket standing in for the phone's RTP port decodes what the call sends."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.integration.conftest import LiveStreamHub, free_port, wait_for
from tests.integration.test_engine import codecs, ffprobe, live_names, publish
from tests.tools.audio import levels, make_wav
from tests.tools.rtp import (
    PCMA,
    PcapPlayer,
    RtpCapture,
    dominant_frequency,
    h264_pcap,
    level_db,
    opus_decoded,
    opus_pcap,
    tone_pcap,
)

pytestmark = pytest.mark.services
SCENARIOS = Path(__file__).with_name("sipp")
TONE_HZ = 1000


def sipp_media_port() -> int:
    """A UDP port for sipp's ``-mp`` whose neighbour two up is free too: sipp binds both (audio
    RTP and video RTP) and does not start when either is taken."""
    for _ in range(100):
        port = free_port()
        probes = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        try:
            for probe, candidate in zip(probes, (port, port + 2), strict=True):
                probe.bind(("127.0.0.1", candidate))
            return port
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError("no free UDP port pair for sipp's media")


class Sipp:
    """sipp as a UAS on a free UDP port, running ``scenario`` with ``-key`` values; what it
    received and sent is in its message trace."""

    def __init__(self, folder: Path, scenario: str, **keys: str) -> None:
        assert shutil.which("sipp"), "sipp is missing: `make test` installs Debian's sip-tester"
        self.port = free_port()
        name = Path(scenario).stem
        self.message_file = folder / f"sipp-{name}-{self.port}-messages.log"
        self.error_file = folder / f"sipp-{name}-{self.port}-errors.log"
        command = [
            "sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(self.port),
            "-mi", "127.0.0.1", "-mp", str(sipp_media_port()), "-nostdin", "-nd",
            "-trace_msg", "-message_file", str(self.message_file), "-trace_err", "-error_file", str(self.error_file),
        ]  # fmt: skip
        keys = {"pt": "0", "codec": "PCMU", **keys}  # answer.xml's codec: G.711 µ-law unless told
        for key, value in keys.items():
            command += ["-key", key, str(value)]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)  # fmt: skip

    def messages(self) -> str:
        return self.message_file.read_text(errors="replace") if self.message_file.exists() else ""

    def received(self, method: str) -> list[str]:
        """The SIP requests of ``method`` sipp received (each message's text)."""
        return [block for block in self.messages().split("----------") if f"\n{method} sip:" in block
                and "message received" in block]  # fmt: skip

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def sip_platform(tmp_path_factory, redis_url):
    """The platform with its SIP agents on loopback (sipp and the RTP capture listen there)."""
    server = LiveStreamHub(tmp_path_factory.mktemp("sip-platform"), redis_url)
    server.env["STREAMHUB_SIP_BIND_HOST"] = "127.0.0.1"
    # v3 waits up to 20 s (WCS's cap is 5): a call placed by a loaded worker is still answered within it.
    server.env["STREAMHUB_WCS_JOBS_MAX_PREFER_WAIT_TIME"] = "20"
    server.env["STREAMHUB_SIP_LOG_LEVEL"] = "4"  # every SIP message in the calls' logs
    server.start(engine=True, worker=True)
    yield server
    server.stop()


@pytest.fixture
def sipp(tmp_path):
    started: list[Sipp] = []

    def start(scenario: str, **keys: str) -> Sipp:
        started.append(Sipp(tmp_path, scenario, **keys))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def capture():
    receiver = RtpCapture()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    return tone_pcap(tmp_path_factory.mktemp("pcap") / "tone.pcap", TONE_HZ, 40)


def wcs(platform, method: str, body: dict) -> requests.Response:
    return requests.post(f"{platform.url}/rest-api/call/{method}", json=body, timeout=10)


def v3(platform, method: str, body: dict, prefer: str) -> requests.Response:
    return requests.post(f"{platform.url}/rest-api/v3/call/{method}", json=body, headers={"Prefer": prefer},
                         timeout=30)  # fmt: skip


def find_job(platform, job_id: str) -> dict:
    [job] = requests.post(f"{platform.url}/rest-api/v3/jobs/find", json={"id": job_id}, timeout=10).json()
    return job


def find_call(platform, call_id: str) -> dict | None:
    response = wcs(platform, "find", {"callId": call_id})
    return response.json()[0] if response.status_code == 200 else None


def wait_status(platform, call_id: str, status: str, timeout: float = 30) -> dict:
    return wait_for(
        lambda: (call := find_call(platform, call_id)) and call["status"] == status and call,
        timeout,
        lambda: f"{find_call(platform, call_id)}\n{platform.log('worker')[-3000:]}",
    )


def call_body(sipp: Sipp, call_id: str, **extra) -> dict:
    return {"callId": call_id, "callee": "100", "sipLogin": "streamhub", "sipDomain": "127.0.0.1",
            "sipPort": sipp.port, "visibleName": "StreamHub", "hasAudio": True, "hasVideo": False, **extra}  # fmt: skip


def call_logs(platform) -> str:
    """Every call's PJSIP log (with rotated parts) written by the platform's SIP agents."""
    folder = Path(platform.env["STREAMHUB_VAR_DIR"]) / "sip"
    return "".join(path.read_text(errors="replace") for path in sorted(folder.glob("call-*.log*")))


def assert_no_password_anywhere(platform, password: str) -> None:
    logs = {"calls": call_logs(platform), "worker": platform.log("worker"), "api": platform.log("api")}
    assert [name for name, text in logs.items() if password in text] == []


def decoded(url: str, seconds: float = 3.0, rate: int = 8000) -> np.ndarray:
    """``seconds`` of the audio at ``url`` decoded by ffmpeg (mono, ``rate`` Hz)."""
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-rw_timeout", "10000000", "-i", url, "-t", str(seconds),
         "-vn", "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return np.frombuffer(result.stdout, dtype=np.int16)


def test_an_answered_call_becomes_a_live_stream_of_the_far_ends_audio(sip_platform, sipp, capture, tone):
    phone = sipp("answer.xml", rtp_port=capture.port, pcap=tone)
    response = wcs(sip_platform, "startup", call_body(phone, "call-stream", toStream="sipcall"))
    assert response.status_code == 200

    call = wait_status(sip_platform, "call-stream", "ESTABLISHED")
    assert call["farEnd"].startswith("sip:100@127.0.0.1") and call["codec"] == "PCMU/8000"
    assert call["toStream"] == "sipcall" and call["incoming"] is False
    [invite] = phone.received("INVITE")
    assert 'From: "StreamHub" <sip:streamhub@127.0.0.1>' in invite

    wait_for(lambda: "sipcall" in live_names(sip_platform), 30, lambda: sip_platform.log("engine")[-3000:])
    url = f"{sip_platform.rtmp}/app/sipcall"
    assert codecs(ffprobe(url))["audio"]["codec_name"] == "aac"
    mean, peak = levels(url, seconds=3)
    # The tone as sent (a sine at half of full scale: peak -6 dB, mean -9 dB), not silence (-91 dB).
    assert -13 < mean < -6 and -9 < peak <= 0, (mean, peak)
    assert abs(dominant_frequency(decoded(url), 8000) - TONE_HZ) < 20

    assert wcs(sip_platform, "terminate", {"callId": "call-stream"}).status_code == 200
    call = wait_status(sip_platform, "call-stream", "FINISHED")
    assert call["duration"] > 0
    wait_for(lambda: phone.received("BYE"), 10, phone.messages)
    wait_for(lambda: "sipcall" not in live_names(sip_platform), 30)
    assert wcs(sip_platform, "terminate", {"callId": "call-stream"}).json()["message"] == "Call not found"


def test_a_call_pushes_the_far_ends_audio_to_rtmp_url_and_clashes_are_refused(
    sip_platform, sipp, capture, tone, nginx_rtmp
):
    phone = sipp("answer.xml", rtp_port=capture.port, pcap=tone)
    body = call_body(phone, "call-push", rtmpUrl=nginx_rtmp, rtmpStream="fromsip")
    assert wcs(sip_platform, "startup", body).status_code == 200
    assert wcs(sip_platform, "startup", body).status_code == 409  # same callId
    clash = wcs(sip_platform, "startup", {**body, "callId": "another"})  # same rtmpUrl
    assert (clash.status_code, clash.json()["message"]) == (409, "Conflict")

    wait_status(sip_platform, "call-push", "ESTABLISHED")
    url = f"{nginx_rtmp}/fromsip"
    wait_for(lambda: subprocess.run(["ffprobe", "-v", "error", url], timeout=30).returncode == 0, 30)
    assert codecs(ffprobe(url))["audio"]["codec_name"] == "aac"
    assert abs(dominant_frequency(decoded(url), 8000) - TONE_HZ) < 20
    [found] = wcs(sip_platform, "find", {"rtmpUrl": nginx_rtmp}).json()
    assert found["callId"] == "call-push" and found["rtmpStream"] == "fromsip"

    assert wcs(sip_platform, "terminate", {"callId": "call-push"}).status_code == 200
    wait_status(sip_platform, "call-push", "FINISHED")


def test_a_phone_speaking_g711_a_law_is_heard_in_the_stream(sip_platform, sipp, capture, tmp_path):
    alaw_tone = tone_pcap(tmp_path / "alaw.pcap", 600, 30, payload_type=PCMA)
    phone = sipp("answer.xml", rtp_port=capture.port, pcap=alaw_tone, pt="8", codec="PCMA")
    # Video asked for, a phone answering audio only: the call goes on without it.
    body = call_body(phone, "call-alaw", toStream="alaw", hasVideo=True)
    assert wcs(sip_platform, "startup", body).status_code == 200
    assert wait_status(sip_platform, "call-alaw", "ESTABLISHED")["codec"] == "PCMA/8000"
    [invite] = phone.received("INVITE")
    assert "m=video" in invite and "H264/90000" in invite
    wait_for(lambda: "alaw" in live_names(sip_platform), 30, lambda: sip_platform.log("engine")[-3000:])
    assert abs(dominant_frequency(decoded(f"{sip_platform.rtmp}/app/alaw"), 8000) - 600) < 20
    assert wcs(sip_platform, "terminate", {"callId": "call-alaw"}).status_code == 200
    wait_status(sip_platform, "call-alaw", "FINISHED")


def far_end_video(port: int, folder: Path) -> subprocess.Popen:
    """ffprobe as the far end's video receiver: H.264 RTP on ``port`` (it binds it), described by an SDP."""
    sdp = folder / f"far-end-video-{port}.sdp"
    sdp.write_text(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=far end\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=video {port} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n"
    )
    return subprocess.Popen(
        ["ffprobe", "-v", "error", "-protocol_whitelist", "file,udp,rtp", "-analyzeduration", "5000000",
         "-show_streams", "-of", "json", str(sdp)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def video_port_of(sdp: str) -> int:
    """The port of the H.264 video line of an SDP (the call's, in its INVITE or re-INVITE answer)."""
    return int(re.search(r"^m=video (\d+) RTP/AVP 96", sdp, re.MULTILINE).group(1))


def camera(tmp_path, port: int) -> PcapPlayer:
    """The phone's camera: 320x240 H.264 RTP played to the call's video ``port``."""
    return PcapPlayer(h264_pcap(tmp_path / "video.pcap", 320, 240, 40), "127.0.0.1", port)


def test_a_video_phones_h264_and_voice_become_the_stream(sip_platform, sipp, capture, tone, tmp_path):
    video_rtp_port = free_port()
    phone = sipp("answer_video.xml", rtp_port=capture.port, pcap=tone, video_rtp_port=video_rtp_port)
    body = call_body(phone, "call-video", toStream="sipvideo", hasVideo=True)
    assert wcs(sip_platform, "startup", body).status_code == 200
    assert wait_status(sip_platform, "call-video", "ESTABLISHED")["codec"] == "PCMU/8000, H264/90000"
    [invite] = phone.received("INVITE")
    phone_camera = camera(tmp_path, video_port_of(invite))
    try:
        wait_for(lambda: "sipvideo" in live_names(sip_platform), 30, lambda: sip_platform.log("engine")[-3000:])
        url = f"{sip_platform.rtmp}/app/sipvideo"
        for played in (url, f"{sip_platform.media}/app/sipvideo/ts:playlist.m3u8"):
            tracks = wait_for(lambda played=played: len(found := codecs(ffprobe(played))) == 2 and found, 30)
            assert tracks["audio"]["codec_name"] == "aac" and tracks["video"]["codec_name"] == "h264", tracks
            assert (tracks["video"]["width"], tracks["video"]["height"]) == (320, 240)
        mean, peak = levels(url, seconds=3)
        assert -13 < mean < -6 and -9 < peak <= 0, (mean, peak)  # the far end's tone, as in the audio-only call
        assert abs(dominant_frequency(decoded(url), 8000) - TONE_HZ) < 20
    finally:
        phone_camera.stop()

    # A live stream injected into the call: its video reaches the phone as H.264 at its size.
    pattern = publish(sip_platform, "pattern", seconds=60, size="352x288")
    receiver = far_end_video(video_rtp_port, tmp_path)
    try:
        wait_for(lambda: "pattern" in live_names(sip_platform), 30)
        response = wcs(sip_platform, "inject_stream/startup", {"callId": "call-video", "streamName": "pattern"})
        assert response.status_code == 200
        out, err = receiver.communicate(timeout=60)
        [received] = json.loads(out)["streams"]
        assert (received["codec_name"], received["width"], received["height"]) == ("h264", 352, 288), err
        assert received["profile"] in ("Constrained Baseline", "Baseline")  # what the offer names
        assert wcs(sip_platform, "inject_stream/terminate", {"callId": "call-video"}).status_code == 200
    finally:
        receiver.kill()
        pattern.kill()
    assert wcs(sip_platform, "terminate", {"callId": "call-video"}).status_code == 200
    wait_status(sip_platform, "call-video", "FINISHED")


def tracks(url: str) -> dict:
    """The tracks ffprobe finds at ``url`` by type; none while nothing is published there."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-rw_timeout", "5000000", "-show_streams", "-of", "json", url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return codecs(json.loads(result.stdout)) if result.returncode == 0 else {}


def reinvite_answer(phone: Sipp) -> str:
    """Our answer to the phone's re-INVITE (its CSeq is 1), as sipp received it."""
    return next(
        (block for block in phone.messages().split("----------")
         if "message received" in block and "SIP/2.0 200 OK" in block and "CSeq: 1 INVITE" in block),
        "",
    )  # fmt: skip


def test_a_re_invite_adding_video_publishes_the_stream_again_with_it(sip_platform, sipp, capture, tone, tmp_path):
    phone = sipp("reinvite_video.xml", rtp_port=capture.port, pcap=tone, video1=0, video2=free_port())
    body = call_body(phone, "call-add-video", toStream="addvideo", hasVideo=True)
    assert wcs(sip_platform, "startup", body).status_code == 200
    assert wait_status(sip_platform, "call-add-video", "ESTABLISHED")["codec"] == "PCMU/8000"
    url = f"{sip_platform.rtmp}/app/addvideo"
    wait_for(lambda: "addvideo" in live_names(sip_platform), 30, lambda: sip_platform.log("engine")[-3000:])
    assert set(wait_for(lambda: tracks(url), 30)) == {"audio"}

    # The phone turns its camera on: a re-INVITE with video, which the call takes at its video port.
    assert wcs(sip_platform, "send_dtmf", {"callId": "call-add-video", "dtmf": "1", "type": "INFO"}).status_code == 200
    answer = wait_for(lambda: reinvite_answer(phone), 15, phone.messages)
    video_port = video_port_of(answer)
    assert video_port != 0
    wait_for(lambda: find_call(sip_platform, "call-add-video")["codec"] == "PCMU/8000, H264/90000", 15)
    phone_camera = camera(tmp_path, video_port)
    try:
        found = wait_for(
            lambda: len(found := tracks(url)) == 2 and found, 40, lambda: sip_platform.log("worker")[-3000:]
        )
        assert found["audio"]["codec_name"] == "aac" and found["video"]["codec_name"] == "h264", found
        assert (found["video"]["width"], found["video"]["height"]) == (320, 240)
        assert abs(dominant_frequency(decoded(url), 8000) - TONE_HZ) < 20  # the voice goes on
    finally:
        phone_camera.stop()
    assert wcs(sip_platform, "terminate", {"callId": "call-add-video"}).status_code == 200
    wait_status(sip_platform, "call-add-video", "FINISHED")


def test_a_re_invite_removing_video_stops_it_both_ways(sip_platform, sipp, capture, tone, tmp_path):
    far_end_video = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # where the phone takes our video
    far_end_video.bind(("127.0.0.1", 0))
    far_end_video.settimeout(0.5)
    phone = sipp("reinvite_video.xml", rtp_port=capture.port, pcap=tone, video1=far_end_video.getsockname()[1],
                 video2=0)  # fmt: skip
    body = call_body(phone, "call-drop-video", toStream="dropvideo", hasVideo=True)
    assert wcs(sip_platform, "startup", body).status_code == 200
    assert wait_status(sip_platform, "call-drop-video", "ESTABLISHED")["codec"] == "PCMU/8000, H264/90000"
    [invite] = phone.received("INVITE")
    phone_camera = camera(tmp_path, video_port_of(invite))
    pattern = publish(sip_platform, "dropped", seconds=60, size="352x288")
    url = f"{sip_platform.rtmp}/app/dropvideo"
    try:
        wait_for(lambda: len(tracks(url)) == 2, 40, lambda: sip_platform.log("worker")[-3000:])
        wait_for(lambda: "dropped" in live_names(sip_platform), 30)
        response = wcs(sip_platform, "inject_stream/startup", {"callId": "call-drop-video", "streamName": "dropped"})
        assert response.status_code == 200
        wait_for(lambda: _received(far_end_video), 30)  # the injected stream's video reaches the phone

        # The phone turns its camera off: a re-INVITE without video (port 0), answered without it.
        phone_camera.stop()
        assert (
            wcs(sip_platform, "send_dtmf", {"callId": "call-drop-video", "dtmf": "1", "type": "INFO"}).status_code
            == 200
        )
        answer = wait_for(lambda: reinvite_answer(phone), 15, phone.messages)
        assert re.search(r"^m=video 0 ", answer, re.MULTILINE), answer
        wait_for(lambda: find_call(sip_platform, "call-drop-video")["codec"] == "PCMU/8000", 15)
        # No more video into the call (what was on the way drains first), while its audio goes on.
        assert _falls_silent(far_end_video, 2.0, 20)
        found = wait_for(lambda: set(found := tracks(url)) == {"audio"} and found, 40,
                         lambda: sip_platform.log("worker")[-3000:])  # fmt: skip
        assert found["audio"]["codec_name"] == "aac"
        assert abs(dominant_frequency(decoded(url), 8000) - TONE_HZ) < 20
    finally:
        phone_camera.stop()
        pattern.kill()
        far_end_video.close()
    assert wcs(sip_platform, "terminate", {"callId": "call-drop-video"}).status_code == 200
    wait_status(sip_platform, "call-drop-video", "FINISHED")


def _received(receiver: socket.socket) -> bool:
    """Whether a datagram arrives at ``receiver`` within its timeout."""
    try:
        return bool(receiver.recv(65536))
    except TimeoutError:
        return False


def _falls_silent(receiver: socket.socket, quiet: float, timeout: float) -> bool:
    """Whether, within ``timeout`` seconds, nothing arrives at ``receiver`` for ``quiet`` seconds
    (what arrived before is read and dropped)."""
    deadline = time.monotonic() + timeout
    receiver.settimeout(quiet)
    while time.monotonic() < deadline:
        if not _received(receiver):
            return True
    return False


def test_a_rejected_call_ends_failed_with_the_far_ends_reason(sip_platform, sipp):
    phone = sipp("reject.xml")
    assert wcs(sip_platform, "startup", call_body(phone, "call-busy", toStream="busy")).status_code == 200
    call = wait_status(sip_platform, "call-busy", "FAILED")
    assert call["sipMessage"] == "486 Busy Here"
    [failed] = wcs(sip_platform, "find", {"status": "FAILED", "callee": "100"}).json()
    assert failed["callId"] == "call-busy"
    assert "busy" not in live_names(sip_platform)
    # Ended: a new call may take its callId.
    assert wcs(sip_platform, "terminate", {"callId": "call-busy"}).status_code == 404


def test_a_far_end_speaking_only_opus_and_h264_ends_failed_with_the_codecs_named(sip_platform, sipp):
    phone = sipp("opus_only.xml")
    assert wcs(sip_platform, "startup", call_body(phone, "call-opus", toStream="opus")).status_code == 200
    call = wait_status(sip_platform, "call-opus", "FAILED")
    assert "Unsupported codecs: the far end offers opus/48000/2, H264/90000" in call["sipMessage"], call
    assert "PCMU/8000" in call["sipMessage"] and call["duration"] == 0
    wait_for(lambda: phone.received("BYE"), 10, phone.messages)  # PJSIP hangs up the call it cannot carry
    assert "opus" not in live_names(sip_platform)

    # A far end refusing the offer itself (as one that wants Opus only would) says so too.
    picky = sipp("not_acceptable.xml")
    assert wcs(sip_platform, "startup", call_body(picky, "call-488")).status_code == 200
    call = wait_status(sip_platform, "call-488", "FAILED")
    assert call["sipMessage"].startswith("488 Not Acceptable Here: Unsupported codecs: the far end accepts none"), call


def restart_worker(platform, **env: str | None) -> None:
    """The platform's worker stopped (SIGTERM: Celery's warm shutdown) and started again with ``env``
    (None: unset)."""
    worker = platform.processes["worker"]
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        platform.kill("worker")
    for name, value in env.items():
        if value is None:
            platform.env.pop(name, None)
        else:
            platform.env[name] = value
    platform.start_worker()


@pytest.fixture
def opus_offered(sip_platform):
    """Calls offer an Opus line of the agent's own (STREAMHUB_SIP_OFFER_OPUS) during the test."""
    restart_worker(sip_platform, STREAMHUB_SIP_OFFER_OPUS="true")
    yield
    restart_worker(sip_platform, STREAMHUB_SIP_OFFER_OPUS=None)


def test_a_far_end_taking_our_opus_line_is_heard_and_hears_us_in_opus(
    sip_platform, opus_offered, sipp, capture, tmp_path
):
    media_root = Path(sip_platform.env["STREAMHUB_MEDIA_ROOT"])
    media_root.mkdir(parents=True, exist_ok=True)
    make_wav(media_root / "opus-beep.wav", 440, 6, volume=1.0)
    opus_capture = RtpCapture()  # the phone's Opus receiver
    phone = sipp("answer_opus.xml", rtp_port=capture.port, opus_rtp_port=opus_capture.port)
    player = None
    try:
        assert wcs(sip_platform, "startup", call_body(phone, "call-opus-line", toStream="opusline")).status_code == 200
        assert wait_status(sip_platform, "call-opus-line", "ESTABLISHED")["codec"] == "opus/48000/2"
        [invite] = phone.received("INVITE")
        assert re.search(r"^m=audio \d+ RTP/AVP 0 8 9", invite, re.MULTILINE), invite  # PJSIP's line first
        opus_port = int(re.search(r"^m=audio (\d+) RTP/AVP 111\r?$", invite, re.MULTILINE).group(1))
        assert "a=rtpmap:111 opus/48000/2" in invite
        player = PcapPlayer(opus_pcap(tmp_path / "opus.pcap", TONE_HZ, 40), "127.0.0.1", opus_port)

        # The stream is the phone's Opus (its tone), not PJSIP's G.711 line (where the phone sends nothing).
        wait_for(lambda: "opusline" in live_names(sip_platform), 30, lambda: sip_platform.log("engine")[-3000:])
        url = f"{sip_platform.rtmp}/app/opusline"
        assert codecs(ffprobe(url))["audio"]["codec_name"] == "aac"
        mean, peak = levels(url, seconds=3)
        assert -13 < mean < -6 and -9 < peak <= 0, (mean, peak)
        assert abs(dominant_frequency(decoded(url), 8000) - TONE_HZ) < 20

        # What is played into the call reaches the phone as Opus; PJSIP's line carries silence.
        before, g711_before = len(opus_capture.opus), len(capture.audio)
        assert (
            wcs(sip_platform, "inject_sound", {"callId": "call-opus-line", "fileName": "opus-beep.wav"}).status_code
            == 200
        )
        wait_for(lambda: len(opus_capture.opus) - before >= 50 * 4, 20)  # 4 s of 20 ms packets
        sound = opus_decoded(opus_capture.opus[before:])[8000 : 8000 * 3]  # its steady middle, at 8 kHz
        assert level_db(sound) > -30 and abs(dominant_frequency(sound, 8000) - 440) < 15
        g711 = capture.pcm()[g711_before:]
        assert len(g711) >= 8000 * 3 and level_db(g711) < -60, len(g711)
    finally:
        if player is not None:
            player.stop()
        opus_capture.close()
    assert wcs(sip_platform, "terminate", {"callId": "call-opus-line"}).status_code == 200
    wait_status(sip_platform, "call-opus-line", "FINISHED")

    # A phone that takes only PJSIP's line (its answer has no second line) gets a G.711 call as before.
    plain = sipp("answer_listen.xml", rtp_port=capture.port)
    assert wcs(sip_platform, "startup", call_body(plain, "call-no-opus")).status_code == 200
    assert wait_status(sip_platform, "call-no-opus", "ESTABLISHED")["codec"] == "PCMU/8000"
    assert wcs(sip_platform, "terminate", {"callId": "call-no-opus"}).status_code == 200
    wait_status(sip_platform, "call-no-opus", "FINISHED")


def test_dtmf_and_injected_sound_reach_the_far_end(sip_platform, sipp, capture):
    media_root = Path(sip_platform.env["STREAMHUB_MEDIA_ROOT"])
    media_root.mkdir(parents=True, exist_ok=True)
    make_wav(media_root / "beep.wav", 440, 6, volume=1.0)
    phone = sipp("answer_listen.xml", rtp_port=capture.port)
    assert wcs(sip_platform, "startup", call_body(phone, "call-dtmf")).status_code == 200
    wait_status(sip_platform, "call-dtmf", "ESTABLISHED")

    assert wcs(sip_platform, "send_dtmf", {"callId": "call-dtmf", "dtmf": "42#", "type": "RFC2833"}).status_code == 200
    wait_for(lambda: capture.digits() == "42#", 15, lambda: f"{capture.events} {capture.payload_types}")
    assert wcs(sip_platform, "send_dtmf", {"callId": "call-dtmf", "dtmf": "7", "type": "INFO"}).status_code == 200
    [info] = wait_for(lambda: phone.received("INFO"), 15, phone.messages)
    assert "Signal=7" in info and "application/dtmf-relay" in info

    missing = wcs(sip_platform, "inject_sound", {"callId": "call-dtmf", "fileName": "nothing.wav"})
    assert (missing.status_code, missing.json()["message"]) == (404, "File not found")
    before = len(capture.audio)
    assert wcs(sip_platform, "inject_sound", {"callId": "call-dtmf", "fileName": "beep.wav"}).status_code == 200
    wait_for(lambda: len(capture.audio) - before >= 8000 * 4, 20)  # 4 s of the sound at 8 kHz
    sound = capture.pcm()[before + 8000 : before + 8000 * 3]  # its steady middle
    assert level_db(sound) > -30 and abs(dominant_frequency(sound, 8000) - 440) < 15

    assert wcs(sip_platform, "terminate", {"callId": "call-dtmf"}).status_code == 200
    wait_status(sip_platform, "call-dtmf", "FINISHED")


def test_a_call_registers_with_digest_credentials_when_asked(sip_platform, sipp):
    server = sipp("register.xml")
    credentials = {"sipLogin": "alice", "sipAuthenticationName": "alice", "sipRegisterRequired": True}
    body = call_body(server, "call-registered", sipPassword="s3cret", **credentials)
    assert wcs(sip_platform, "startup", body).status_code == 200
    call = wait_status(sip_platform, "call-registered", "ESTABLISHED")
    assert call["caller"] == "alice@127.0.0.1"
    challenged, accepted = server.received("REGISTER")[:2]
    assert "Authorization:" not in challenged and 'Digest username="alice"' in accepted
    assert "sipPassword" not in call and "s3cret" not in str(call)
    assert wcs(sip_platform, "terminate", {"callId": "call-registered"}).status_code == 200
    wait_status(sip_platform, "call-registered", "FINISHED")

    refused = call_body(server, "call-refused", sipPassword="wrong", **credentials)
    assert wcs(sip_platform, "startup", refused).status_code == 200
    call = wait_status(sip_platform, "call-refused", "FAILED")
    assert call["sipMessage"] == "Registration failed: 403 Forbidden"
    # The logs show the digest exchange (PJSIP logs every SIP message at level 4), not the password.
    wait_for(lambda: 'Digest username="alice"' in call_logs(sip_platform), 10)
    assert_no_password_anywhere(sip_platform, "s3cret")


def test_a_call_answers_the_far_ends_digest_challenge(sip_platform, sipp):
    phone = sipp("auth.xml")
    body = call_body(phone, "call-auth", sipLogin="alice", sipPassword="s3cret")
    assert wcs(sip_platform, "startup", body).status_code == 200
    wait_status(sip_platform, "call-auth", "ESTABLISHED")
    first, second = phone.received("INVITE")[:2]
    assert "Authorization:" not in first and 'Digest username="alice"' in second
    assert wcs(sip_platform, "terminate", {"callId": "call-auth"}).status_code == 200
    wait_status(sip_platform, "call-auth", "FINISHED")
    assert 'Digest username="alice"' in call_logs(sip_platform)
    assert_no_password_anywhere(sip_platform, "s3cret")


def test_a_live_streams_audio_is_injected_into_the_call_until_terminated(sip_platform, sipp, capture):
    publisher = publish(sip_platform, "music", seconds=60)  # a 440 Hz tone with its test pattern
    try:
        wait_for(lambda: "music" in live_names(sip_platform), 30)
        phone = sipp("answer_listen.xml", rtp_port=capture.port)
        assert wcs(sip_platform, "startup", call_body(phone, "call-inject")).status_code == 200
        wait_status(sip_platform, "call-inject", "ESTABLISHED")

        missing = wcs(sip_platform, "inject_stream/startup", {"callId": "call-inject", "streamName": "nothing"})
        assert (missing.status_code, missing.json()["message"]) == (404, "Stream not found")
        before = len(capture.audio)
        response = wcs(sip_platform, "inject_stream/startup", {"callId": "call-inject", "streamName": "music"})
        assert response.status_code == 200

        def tone_heard() -> bool:
            recent = capture.pcm()[max(before, len(capture.audio) - 8000) :]
            return len(recent) == 8000 and level_db(recent) > -30

        wait_for(tone_heard, 30, lambda: sip_platform.log("worker")[-2000:])
        assert abs(dominant_frequency(capture.pcm()[-8000:], 8000) - 440) < 15

        assert wcs(sip_platform, "inject_stream/terminate", {"callId": "call-inject"}).status_code == 200
        wait_for(lambda: level_db(capture.pcm()[-4000:]) < -60, 15)  # silence again
        assert wcs(sip_platform, "terminate", {"callId": "call-inject"}).status_code == 200
        wait_status(sip_platform, "call-inject", "FINISHED")
    finally:
        publisher.kill()


def test_a_call_goes_on_through_an_api_server_restart(sip_platform, sipp, capture):
    phone = sipp("answer_listen.xml", rtp_port=capture.port)
    assert wcs(sip_platform, "startup", call_body(phone, "call-restart")).status_code == 200
    wait_status(sip_platform, "call-restart", "ESTABLISHED")
    sip_platform.kill("api")
    received = len(capture.audio)
    sip_platform.start()  # the API server alone, as after a crash or a deploy
    assert len(capture.audio) > received  # the call kept sending while the API was down
    assert find_call(sip_platform, "call-restart")["status"] == "ESTABLISHED"
    assert wcs(sip_platform, "terminate", {"callId": "call-restart"}).status_code == 200
    wait_status(sip_platform, "call-restart", "FINISHED")
    wait_for(lambda: phone.received("BYE"), 10, phone.messages)


def test_a_call_whose_worker_dies_is_placed_again(sip_platform, sipp, capture):
    phone = sipp("answer_listen.xml", rtp_port=capture.port)
    assert wcs(sip_platform, "startup", call_body(phone, "call-redial")).status_code == 200
    wait_status(sip_platform, "call-redial", "ESTABLISHED")
    sip_platform.kill("worker")  # the worker and the call's SIP agent, as a crash of the machine would
    sip_platform.start_worker()  # the job recovery finds the call's lease run out and queues it again
    wait_for(lambda: len(phone.received("INVITE")) == 2, 60, lambda: sip_platform.log("worker")[-3000:])
    wait_status(sip_platform, "call-redial", "ESTABLISHED")
    assert wcs(sip_platform, "terminate", {"callId": "call-redial"}).status_code == 200
    wait_status(sip_platform, "call-redial", "FINISHED")


def test_v3_startup_answers_200_with_the_call_once_it_is_answered_or_has_failed(sip_platform, sipp, capture):
    phone = sipp("answer_listen.xml", rtp_port=capture.port)
    body = call_body(phone, "v3-answered", sipPassword="s3cret")
    response = v3(sip_platform, "startup", body, "respond-async, wait=15")
    assert response.status_code == 200, response.text
    call = response.json()
    assert (call["callId"], call["status"], call["codec"]) == ("v3-answered", "ESTABLISHED", "PCMU/8000")
    assert call["farEnd"].startswith("sip:100@127.0.0.1") and "s3cret" not in response.text
    # A v2 error fails the job before any SIP: the same answer as v2's.
    clash = v3(sip_platform, "startup", body, "respond-async, wait=15")
    assert (clash.status_code, clash.json()["message"]) == (409, "Conflict")
    assert wcs(sip_platform, "terminate", {"callId": "v3-answered"}).status_code == 200
    wait_status(sip_platform, "v3-answered", "FINISHED")

    busy = sipp("reject.xml")
    response = v3(sip_platform, "startup", call_body(busy, "v3-busy"), "respond-async, wait=15")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["sipMessage"]) == ("FAILED", "486 Busy Here")


def test_v3_startup_of_a_ringing_phone_answers_202_then_the_job_is_done_when_it_answers(sip_platform, sipp, capture):
    phone = sipp("ring.xml", rtp_port=capture.port)  # rings 3 s
    response = v3(sip_platform, "startup", call_body(phone, "v3-ringing"), "respond-async, wait=1")
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["method"] == "call/startup" and job["state"] in ("PENDING", "RUNNING")
    assert response.headers["Location"] == f"/rest-api/v3/jobs/{job['id']}"
    done = wait_for(lambda: (found := find_job(sip_platform, job["id"]))["state"] == "DONE" and found, 30)
    assert done["result"]["status"] == "ESTABLISHED" and done["result"]["callId"] == "v3-ringing"
    assert wcs(sip_platform, "terminate", {"callId": "v3-ringing"}).status_code == 200
    wait_status(sip_platform, "v3-ringing", "FINISHED")


def test_v3_startup_cancelled_by_its_timeout_cancels_the_ringing_call(sip_platform, sipp, capture, tmp_path):
    long_ring = tmp_path / "long_ring.xml"  # rings 30 s
    long_ring.write_text((SCENARIOS / "ring.xml").read_text().replace('timeout="3000"', 'timeout="30000"'))
    phone = sipp(str(long_ring), rtp_port=capture.port)
    body = call_body(phone, "v3-timeout", sipPassword="s3cret")
    response = v3(sip_platform, "startup", body, "respond-async, wait=0, timeout=8")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    job = wait_for(lambda: (found := find_job(sip_platform, job_id))["state"] == "CANCELLED" and found, 30)
    assert "timeout" in job["error"] and job["request"]["sipPassword"] == "***"
    wait_for(lambda: phone.received("CANCEL"), 15, phone.messages)
    call = wait_status(sip_platform, "v3-timeout", "FAILED")
    assert "487" in call["sipMessage"] or "Terminated" in call["sipMessage"], call
