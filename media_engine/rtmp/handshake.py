"""The RTMP handshake (C0/C1/C2 from the client, S0/S1/S2 from the server), without sockets.

A client whose C1 carries a version and a valid HMAC-SHA256 digest (Flash Player, ffmpeg,
librtmp/OBS with crypto) gets the "complex" answer: an S1 signed with the FMS key and an S2 signed
with a key derived from the client's digest, as nginx-rtmp and FMS answer. Every other client
gets the simple handshake of the specification (S1 with a zero version, S2 echoing C1).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable

RTMP_VERSION = 3
HANDSHAKE_SIZE = 1536
C0C1_SIZE = 1 + HANDSHAKE_SIZE
C2_SIZE = HANDSHAKE_SIZE
DIGEST_SIZE = 32

_KEY_TAIL = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
# "Genuine Adobe Flash Media Server 001" + tail (68 bytes); S1 is signed with its first 36 bytes.
FMS_KEY = b"Genuine Adobe Flash Media Server 001" + _KEY_TAIL
# "Genuine Adobe Flash Player 001" + tail (62 bytes); C1 is signed with its first 30 bytes.
FP_KEY = b"Genuine Adobe Flash Player 001" + _KEY_TAIL
FMS_KEY_PARTIAL = FMS_KEY[:36]
FP_KEY_PARTIAL = FP_KEY[:30]

SERVER_VERSION = bytes((13, 14, 10, 13))
CLIENT_VERSION = bytes((9, 0, 124, 2))

# The two places a digest can sit in a 1536-byte C1/S1: the scheme's base offset.
DIGEST_SCHEMES = (8, 772)

_U32 = struct.Struct(">I")


def _digest_offset(packet: bytes, base: int) -> int:
    """Where the 32-byte digest sits in a C1/S1 for the scheme starting at ``base``."""
    return (packet[base] + packet[base + 1] + packet[base + 2] + packet[base + 3]) % 728 + base + 4


def _hmac(key: bytes, *parts: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def make_digest(packet: bytes, offset: int, key: bytes) -> bytes:
    """HMAC-SHA256 of ``packet`` without the 32 bytes at ``offset``."""
    return _hmac(key, packet[:offset], packet[offset + DIGEST_SIZE :])


def find_digest(packet: bytes, key: bytes) -> int | None:
    """Offset of a valid digest in a 1536-byte C1/S1 signed with ``key``, trying both schemes."""
    if len(packet) != HANDSHAKE_SIZE:
        raise ValueError("handshake packet must be 1536 bytes")
    for base in reversed(DIGEST_SCHEMES):
        offset = _digest_offset(packet, base)
        expected = make_digest(packet, offset, key)
        if hmac.compare_digest(expected, packet[offset : offset + DIGEST_SIZE]):
            return offset
    return None


def sign(packet: bytearray, key: bytes, base: int = 8) -> bytes:
    """Write the digest of ``packet`` (a C1/S1) in place for the scheme at ``base``; returns it."""
    offset = _digest_offset(packet, base)
    digest = make_digest(bytes(packet), offset, key)
    packet[offset : offset + DIGEST_SIZE] = digest
    return digest


def response_signature(packet: bytes, peer_digest: bytes, full_key: bytes) -> bytes:
    """The last 32 bytes of an S2 (``full_key``=FMS_KEY) or C2 (FP_KEY) answering ``peer_digest``."""
    return _hmac(_hmac(full_key, peer_digest), packet[: HANDSHAKE_SIZE - DIGEST_SIZE])


class ServerHandshake:
    """Answer one client's C0+C1 with S0+S1+S2.

    ``uptime_ms`` fills S1's time field; ``random_bytes`` is injectable so tests are repeatable.
    """

    def __init__(self, uptime_ms: int = 0, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self.uptime_ms = uptime_ms & 0xFFFFFFFF
        self._random = random_bytes
        self.client_digest: bytes | None = None
        self.client_version = b"\x00\x00\x00\x00"

    @property
    def is_complex(self) -> bool:
        """Whether the client signed its C1 (so S1/S2 carry digests)."""
        return self.client_digest is not None

    def respond(self, c0c1: bytes | bytearray | memoryview) -> bytes:
        """S0+S1+S2 for the 1537 bytes of C0+C1; ValueError if they are not an RTMP handshake."""
        c0c1 = bytes(c0c1)
        if len(c0c1) != C0C1_SIZE:
            raise ValueError(f"C0+C1 must be {C0C1_SIZE} bytes, got {len(c0c1)}")
        if c0c1[0] != RTMP_VERSION:
            # 6 and 8 are RTMPE (encrypted), anything else is not RTMP at all.
            raise ValueError(f"unsupported RTMP version {c0c1[0]}")
        c1 = c0c1[1:]
        self.client_version = c1[4:8]
        if self.client_version != b"\x00\x00\x00\x00":
            offset = find_digest(c1, FP_KEY_PARTIAL)
            if offset is not None:
                self.client_digest = c1[offset : offset + DIGEST_SIZE]

        s1 = bytearray(_U32.pack(self.uptime_ms))
        if self.client_digest is None:
            s1 += b"\x00\x00\x00\x00"
            s1 += self._random(HANDSHAKE_SIZE - 8)
            s2 = c1
        else:
            s1 += SERVER_VERSION
            s1 += self._random(HANDSHAKE_SIZE - 8)
            sign(s1, FMS_KEY_PARTIAL)
            s2_body = self._random(HANDSHAKE_SIZE - DIGEST_SIZE)
            s2 = s2_body + response_signature(s2_body + bytes(DIGEST_SIZE), self.client_digest, FMS_KEY)
        return bytes((RTMP_VERSION,)) + bytes(s1) + s2


def client_c0c1(uptime_ms: int = 0, signed: bool = True, random_bytes: Callable[[int], bytes] = os.urandom) -> bytes:
    """A client's C0+C1 (signed like Flash Player/ffmpeg, or the simple kind); for tests and tools."""
    c1 = bytearray(_U32.pack(uptime_ms & 0xFFFFFFFF))
    c1 += CLIENT_VERSION if signed else b"\x00\x00\x00\x00"
    c1 += random_bytes(HANDSHAKE_SIZE - 8)
    if signed:
        sign(c1, FP_KEY_PARTIAL)
    return bytes((RTMP_VERSION,)) + bytes(c1)


def verify_server_response(c1: bytes, s1: bytes, s2: bytes) -> bool:
    """Check S1/S2 the way ffmpeg checks them when playing: S1 signed, S2 answering C1's digest."""
    s1_offset = find_digest(s1, FMS_KEY_PARTIAL)
    c1_offset = find_digest(c1, FP_KEY_PARTIAL)
    if s1_offset is None or c1_offset is None:
        return False
    expected = response_signature(s2, c1[c1_offset : c1_offset + DIGEST_SIZE], FMS_KEY)
    return hmac.compare_digest(expected, s2[-DIGEST_SIZE:])
