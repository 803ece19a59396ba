"""The SIP agent's pieces without a network (or on loopback): where a call goes (URIs), PCM from
files in 20 ms frames for the call, the agent's command/event lines, the SDP of its video and Opus
lines, and its Opus line's encoding and decoding."""

from __future__ import annotations

import io
import json
import queue
import socket
import threading
import time

import numpy as np
import pjsua2 as pj

from media_engine.sip import agent
from media_engine.sip.agent import (
    CLOCK_RATE,
    CallSpec,
    Events,
    byte_vector_bytes,
    read_commands,
    sdp_codecs,
    unsupported_codecs_reason,
)
from media_engine.sip.audio import PcmFeeder
from media_engine.sip.opus import BUFFERED_FRAMES, OpusLine, answered_opus, opus_offer_lines
from media_engine.sip.video import answered_h264, video_destination, video_offer_lines
from tests.tools.audio import make_wav
from tests.tools.rtp import _read_pcap, dominant_frequency, level_db, opus_pcap


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


def test_the_far_ends_answer_to_our_opus_line_is_read_from_its_sdp():
    lines = opus_offer_lines("198.51.100.4", 40004)
    assert lines[:3] == ["m=audio 40004 RTP/AVP 111", "c=IN IP4 198.51.100.4", "a=rtpmap:111 opus/48000/2"]
    answer = (
        "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        "m=audio 4004 RTP/AVP 107\r\na=rtpmap:107 OPUS/48000/2\r\nm=video 0 RTP/AVP 96\r\n"
    )
    assert answered_opus(answer, 1) == (("192.0.2.1", 4004), 107)  # its payload type, the session's host
    assert answered_opus(answer.replace("m=audio 4004", "m=audio 0"), 1) is None  # refused
    assert answered_opus(answer.replace("OPUS/48000/2", "PCMA/8000"), 1) is None
    assert answered_opus(answer, 0) is None and answered_opus(answer, 3) is None  # PJSIP's line; none


def test_an_opus_line_encodes_what_it_is_given_and_decodes_what_it_receives():
    sender, receiver = OpusLine("127.0.0.1", CLOCK_RATE), OpusLine("127.0.0.1", CLOCK_RATE)
    sender.set_destination(("127.0.0.1", receiver.port), 111)
    sender.start()
    receiver.start()
    frames: list[bytes] = []
    try:
        tone = (np.sin(2 * np.pi * 440 * np.arange(CLOCK_RATE * 2) / CLOCK_RATE) * 16000).astype(np.int16).tobytes()
        frame_bytes = CLOCK_RATE // 50 * 2
        for start in range(0, len(tone), frame_bytes):  # at the media clock's pace, taking what came
            sender.send_pcm(tone[start : start + frame_bytes])
            time.sleep(0.02)
            while (frame := receiver.next_frame()) is not None:
                frames.append(frame)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if (frame := receiver.next_frame()) is not None:
                frames.append(frame)
            time.sleep(0.01)
    finally:
        sender.stop()
        receiver.stop()
    assert {len(frame) for frame in frames} == {frame_bytes} and 95 <= len(frames) <= 100, len(frames)
    samples = np.frombuffer(b"".join(frames), dtype=np.int16)[CLOCK_RATE // 2 :]
    assert abs(dominant_frequency(samples, CLOCK_RATE) - 440) < 5 and level_db(samples) > -15


def test_an_opus_line_keeps_its_newest_frames_and_drops_packets_older_than_the_last(tmp_path):
    receiver = OpusLine("127.0.0.1", CLOCK_RATE)
    receiver.start()
    packets = [rtp for _, rtp in _read_pcap(opus_pcap(tmp_path / "tone.pcap", 1000, 1.0))]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
            for rtp in [*packets[:30], packets[5]]:  # a burst nobody takes yet, then a late packet
                phone.sendto(rtp, ("127.0.0.1", receiver.port))
            deadline = time.monotonic() + 5
            while receiver.received_packets < 31 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.1)
        frames = list(iter(receiver.next_frame, None))
    finally:
        receiver.stop()
    assert receiver.received_packets == 31
    assert len(frames) == BUFFERED_FRAMES  # the newest 200 ms: the late packet added none
    samples = np.frombuffer(b"".join(frames), dtype=np.int16)
    assert abs(dominant_frequency(samples, CLOCK_RATE) - 1000) < 10 and level_db(samples) > -15


def test_a_frames_samples_are_read_from_pjsua2s_byte_vector_in_one_copy():
    samples = np.arange(320, dtype=np.int16).tobytes()  # 20 ms at 8 kHz
    frame = pj.MediaFrame()
    frame.buf = pj.ByteVector(samples)
    assert byte_vector_bytes(frame.buf) == samples and byte_vector_bytes(pj.ByteVector()) == b""
    # This build's layout is the expected one: not SWIG's byte-by-byte iteration (2 ms a frame).
    assert byte_vector_bytes is agent._stored_byte_vector_bytes
