"""RTP test helpers: a tone as a pcap of G.711 µ-law RTP packets (what sipp's play_pcap_audio
sends), and a UDP socket that captures the RTP a SIP call sends (audio and RFC 4733 events)."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
from pathlib import Path

import numpy as np

PCMU, PCMA, TELEPHONE_EVENT = 0, 8, 101
SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _frame(payload: bytes, src_port: int, dst_port: int) -> bytes:
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1"))  # fmt: skip
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return b"\0" * 6 + b"\x02" + b"\0" * 5 + b"\x08\x00" + ip + udp


def tone_pcap(path: Path, frequency: int, seconds: float, payload_type: int = PCMU) -> Path:
    """A pcap (Ethernet/IPv4/UDP/RTP, one packet per 20 ms) of a sine tone in G.711 µ-law (or A-law
    with ``payload_type`` PCMA)."""
    g711 = "alaw" if payload_type == PCMA else "mulaw"
    encoded = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi",
         "-i", f"sine=frequency={frequency}:sample_rate=8000:duration={seconds}",
         "-af", "volume=4", "-ac", "1", "-f", g711, "-"],
        capture_output=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    records = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for index in range(len(encoded) // SAMPLES_PER_PACKET):
        payload = encoded[index * SAMPLES_PER_PACKET : (index + 1) * SAMPLES_PER_PACKET]
        rtp = struct.pack("!BBHII", 0x80, payload_type, index & 0xFFFF, index * SAMPLES_PER_PACKET, 0x5EED) + payload
        frame = _frame(rtp, 6000, 6002)
        micros = index * 20000
        records.append(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(records))
    return path


def mulaw_to_pcm(data: bytes) -> np.ndarray:
    """G.711 µ-law bytes as int16 samples (ITU-T G.711 decoding)."""
    u = ~np.frombuffer(data, dtype=np.uint8)
    sign, exponent, mantissa = u & 0x80, (u >> 4) & 0x07, u & 0x0F
    magnitude = ((mantissa.astype(np.int32) << 3) + 0x84) << exponent
    return np.where(sign != 0, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum[1:])) + 1])


def level_db(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (what volumedetect calls mean_volume)."""
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0
    return 20 * np.log10(max(rms, 1e-9) / 32768)


class RtpCapture:
    """A UDP port that plays the far end's RTP receiver: keeps µ-law audio and telephone events."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.audio = bytearray()
        self.events: list[tuple[int, bool]] = []  # (event code, end bit)
        self.payload_types: set[int] = set()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                packet = self.socket.recv(2048)
            except TimeoutError:
                continue
            if len(packet) < 12:
                continue
            payload_type = packet[1] & 0x7F
            self.payload_types.add(payload_type)
            body = packet[12 + 4 * (packet[0] & 0x0F) :]
            if payload_type == PCMU:
                self.audio += body
            elif payload_type == TELEPHONE_EVENT and len(body) >= 4:
                self.events.append((body[0], bool(body[1] & 0x80)))

    def digits(self) -> str:
        """The DTMF digits received as RFC 4733 events (one per event's end)."""
        names = "0123456789*#ABCD"
        digits, ended = [], False
        for code, end in self.events:
            if end and not ended and code < len(names):
                digits.append(names[code])
            ended = end
        return "".join(digits)

    def pcm(self) -> np.ndarray:
        return mulaw_to_pcm(bytes(self.audio))

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)
        self.socket.close()
