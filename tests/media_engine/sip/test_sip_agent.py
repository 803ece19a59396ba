"""The SIP agent's pieces without a network: where a call goes (URIs), PCM from files in 20 ms
frames for the call, the agent's command/event lines, and the SDP of its video."""

from __future__ import annotations

import io
import json
import queue
import threading

import numpy as np

from media_engine.sip.agent import CLOCK_RATE, CallSpec, Events, read_commands, sdp_codecs, unsupported_codecs_reason
from media_engine.sip.audio import PcmFeeder
from media_engine.sip.video import answered_h264, video_destination, video_offer_lines
from tests.tools.audio import make_wav
from tests.tools.rtp import dominant_frequency, level_db


def test_the_callee_is_called_at_the_server_or_through_the_outbound_proxy():
    direct = CallSpec(callee="100", domain="pbx.example.com", port=5070, login="alice", visible_name="Front desk")
    assert direct.callee_uri() == "sip:100@pbx.example.com:5070"
    assert direct.account_uri() == '"Front desk" <sip:alice@pbx.example.com>'
    proxied = CallSpec(callee="100", domain="example.com", outbound_proxy="proxy.example.com")
    assert proxied.callee_uri() == "sip:100@example.com"
    assert CallSpec(callee="sip:bob@elsewhere.org", domain="x").callee_uri() == "sip:bob@elsewhere.org"
    assert CallSpec(callee="100", domain="x").account_uri() == "sip:streamhub@x"


def test_a_sound_file_becomes_20_ms_frames_of_the_clock_rate_and_then_ends(tmp_path):
    wav = make_wav(tmp_path / "tone.wav", 440, 1.0, rate=44100, volume=1.0)
    ended = threading.Event()
    outcome: list = []
    feeder = PcmFeeder(str(wav), CLOCK_RATE, lambda error: (outcome.append(error), ended.set()))
    feeder.start()
    frames = []
    while not ended.is_set() or not feeder.frames.empty():
        frame = feeder.next_frame()
        if frame is None:
            ended.wait(0.005)
            continue
        frames.append(frame)
    assert outcome == [None]
    assert {len(frame) for frame in frames} == {CLOCK_RATE // 50 * 2}
    assert 49 <= len(frames) <= 51  # one second
    samples = np.frombuffer(b"".join(frames), dtype=np.int16)
    assert abs(dominant_frequency(samples, CLOCK_RATE) - 440) < 5 and level_db(samples) > -30


def test_a_missing_file_ends_the_injection_with_the_error(tmp_path):
    ended = threading.Event()
    outcome: list = []
    PcmFeeder(str(tmp_path / "none.wav"), CLOCK_RATE, lambda error: (outcome.append(error), ended.set())).start()
    assert ended.wait(10)
    assert outcome[0] and "none.wav" in outcome[0]


def test_commands_are_json_lines_and_a_closed_input_hangs_up():
    commands: queue.Queue = queue.Queue()
    read_commands(commands, io.StringIO('{"cmd": "dtmf", "digits": "1"}\nnot json\n\n'))
    assert commands.get_nowait() == {"cmd": "dtmf", "digits": "1"}
    assert commands.get_nowait() == {"cmd": "hangup", "reason": "Terminated: the controller went away"}
    assert commands.empty()


def test_events_are_json_lines():
    out = io.StringIO()
    Events(out).emit("status", status="RINGING", reason="")
    assert json.loads(out.getvalue()) == {"event": "status", "status": "RINGING", "reason": ""}


def test_the_far_ends_codecs_are_read_from_its_sdp():
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 111 0 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n"
        "m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    )
    assert sdp_codecs(sdp) == ["opus/48000/2", "PCMU/8000", "H264/90000"]
    reason = unsupported_codecs_reason(["opus/48000/2"], ["PCMU/8000", "PCMA/8000"], "488 Not Acceptable Here")
    assert reason.startswith("488 Not Acceptable Here: Unsupported codecs: the far end offers opus/48000/2;")
    assert "PCMU/8000, PCMA/8000" in reason and "no Opus" in reason


def test_the_far_ends_video_answer_is_read_from_its_sdp():
    answer = (
        "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        "m=video 4002 RTP/AVP 97\r\nc=IN IP4 192.0.2.7\r\na=rtpmap:97 H264/90000\r\n"
    )
    assert answered_h264(answer) and video_destination(answer) == ("192.0.2.7", 4002)
    session_address = answer.replace("c=IN IP4 192.0.2.7\r\n", "")
    assert video_destination(session_address) == ("192.0.2.1", 4002)
    rejected = answer.replace("m=video 4002", "m=video 0")
    assert not answered_h264(rejected) and video_destination(rejected) is None
    vp8 = answer.replace("H264/90000", "VP8/90000")
    assert not answered_h264(vp8)
    assert not answered_h264("v=0\r\nm=audio 4000 RTP/AVP 0\r\n")


def test_a_video_offer_names_h264_at_the_receivers_port():
    lines = video_offer_lines("198.51.100.4", 40002)
    assert lines[:2] == ["m=video 40002 RTP/AVP 96", "c=IN IP4 198.51.100.4"]
    assert "a=rtpmap:96 H264/90000" in lines and "a=sendrecv" in lines
