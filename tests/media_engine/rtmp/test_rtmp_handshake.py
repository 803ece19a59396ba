"""The handshake: simple clients get an echo, signing clients (ffmpeg, Flash) get signed S1/S2."""

from __future__ import annotations

import random

import pytest

from media_engine.rtmp import handshake
from media_engine.rtmp.handshake import C0C1_SIZE, HANDSHAKE_SIZE, ServerHandshake

from .rtmp_client import FFMPEG_PUBLISH


def fixed_random(seed: int = 1):
    rng = random.Random(seed)
    return lambda n: rng.randbytes(n)


def split(answer: bytes) -> tuple[int, bytes, bytes]:
    assert len(answer) == 1 + 2 * HANDSHAKE_SIZE
    return answer[0], answer[1 : 1 + HANDSHAKE_SIZE], answer[1 + HANDSHAKE_SIZE :]


def test_a_simple_client_gets_a_zero_version_s1_and_its_c1_back():
    c0c1 = handshake.client_c0c1(uptime_ms=1234, signed=False, random_bytes=fixed_random())
    server = ServerHandshake(uptime_ms=99, random_bytes=fixed_random(2))
    s0, s1, s2 = split(server.respond(c0c1))
    assert s0 == 3
    assert s1[:4] == (99).to_bytes(4, "big")
    assert s1[4:8] == bytes(4)
    assert s2 == c0c1[1:]
    assert not server.is_complex


def test_ffmpegs_recorded_c1_gets_signed_answers_that_ffmpeg_would_accept():
    c0c1 = FFMPEG_PUBLISH.read_bytes()[:C0C1_SIZE]
    server = ServerHandshake(random_bytes=fixed_random())
    _, s1, s2 = split(server.respond(c0c1))
    assert server.is_complex
    assert s1[4:8] == handshake.SERVER_VERSION
    assert handshake.verify_server_response(c0c1[1:], s1, s2)


@pytest.mark.parametrize("seed", range(20))
def test_signed_answers_verify_for_either_digest_scheme(seed):
    c1 = bytearray(handshake.client_c0c1(random_bytes=fixed_random(seed))[1:])
    base = handshake.DIGEST_SCHEMES[seed % 2]
    handshake.sign(c1, handshake.FP_KEY_PARTIAL, base)
    server = ServerHandshake(random_bytes=fixed_random(seed + 100))
    _, s1, s2 = split(server.respond(b"\x03" + bytes(c1)))
    assert server.is_complex
    assert handshake.verify_server_response(bytes(c1), s1, s2)


def test_a_versioned_c1_without_a_valid_digest_falls_back_to_the_simple_answer():
    c0c1 = bytearray(handshake.client_c0c1(random_bytes=fixed_random()))
    c0c1[-1] ^= 0xFF
    c0c1[800] ^= 0xFF  # spoil whichever digest position
    c0c1[100] ^= 0xFF
    server = ServerHandshake()
    _, _, s2 = split(server.respond(bytes(c0c1)))
    assert not server.is_complex
    assert s2 == bytes(c0c1[1:])


@pytest.mark.parametrize(
    "c0c1",
    [b"", b"\x03" + bytes(100), b"\x06" + bytes(HANDSHAKE_SIZE), b"GET / HTTP/1.1\r\n" + bytes(C0C1_SIZE - 16)],
)
def test_anything_but_rtmp_version_3_is_refused(c0c1):
    with pytest.raises(ValueError):
        ServerHandshake().respond(c0c1)
