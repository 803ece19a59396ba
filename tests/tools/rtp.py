"""RTP test helpers: a tone as a pcap of G.711 µ-law RTP packets (what sipp's play_pcap_audio
sends) or of Opus RTP (and Opus packets decoded back), a moving picture as a pcap of H.264 RTP
packets and a player sending a pcap's RTP with its timing (as sipp does), and a UDP socket that
captures the RTP a SIP call sends (audio and RFC 4733 events)."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from aiortc.codecs.h264 import H264Encoder

PCMU, PCMA, TELEPHONE_EVENT, H264, OPUS = 0, 8, 101, 96, 111
OPUS_FRAME = 960  # 20 ms at 48 kHz
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
    packets = []
    for index in range(len(encoded) // SAMPLES_PER_PACKET):
        payload = encoded[index * SAMPLES_PER_PACKET : (index + 1) * SAMPLES_PER_PACKET]
        rtp = struct.pack("!BBHII", 0x80, payload_type, index & 0xFFFF, index * SAMPLES_PER_PACKET, 0x5EED) + payload
        packets.append((index * 20000, rtp))
    return _write_pcap(path, packets)


def opus_pcap(path: Path, frequency: int, seconds: float) -> Path:
    """A pcap of Opus RTP (payload type `OPUS`, 48 kHz clock, 20 ms a packet) of a sine tone at half
    of full scale, encoded by libopus."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format, encoder.bit_rate = 48000, "mono", "s16", 64000
    samples = int(seconds * 48000) // OPUS_FRAME * OPUS_FRAME
    tone = (np.sin(2 * np.pi * frequency * np.arange(samples) / 48000) * 16384).astype(np.int16)
    packets, sequence = [], 0
    for start in [*range(0, samples, OPUS_FRAME), None]:  # None flushes the encoder
        frame = None
        if start is not None:
            frame = av.AudioFrame.from_ndarray(tone[start : start + OPUS_FRAME].reshape(1, -1), format="s16",
                                               layout="mono")  # fmt: skip
            frame.sample_rate, frame.pts = 48000, start
        for packet in encoder.encode(frame):
            timestamp = sequence * OPUS_FRAME
            rtp = struct.pack("!BBHII", 0x80, OPUS, sequence & 0xFFFF, timestamp, 0x0F05) + bytes(packet)
            packets.append((sequence * 20000, rtp))
            sequence += 1
    return _write_pcap(path, packets)


def opus_decoded(payloads: list[bytes], rate: int = 8000) -> np.ndarray:
    """Opus packets (RTP payloads, in order) decoded by libopus to mono PCM at ``rate``."""
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate, decoder.layout = 48000, "stereo"
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    pcm = []
    for payload in payloads:
        for frame in decoder.decode(av.Packet(payload)):
            pcm += [resampled.to_ndarray().reshape(-1) for resampled in resampler.resample(frame)]
    return np.concatenate(pcm) if pcm else np.zeros(0, dtype=np.int16)


def h264_pcap(path: Path, width: int, height: int, seconds: float, fps: int = 15, textured: bool = False) -> Path:
    """A pcap of H.264 RTP (payload type 96, RFC 6184 packetization as aiortc does it) of a
    ``width``x``height`` picture with a bar moving across it: Constrained Baseline, a keyframe
    (with SPS/PPS) every second. ``textured``: the bar moves over a detailed background that pans,
    encoded at about 0.1 bit per pixel (a camera's picture costs a decoder and an encoder more
    than a flat one)."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, fps)
    background = None
    if textured:
        encoder.bit_rate = width * height * fps // 10
        blobs = np.random.default_rng(7).integers(0, 256, (height // 4, width // 2, 3), dtype=np.uint8)
        wide = av.VideoFrame.from_ndarray(blobs, format="rgb24").reformat(width=width * 2, height=height)
        fine = np.random.default_rng(8).integers(0, 48, (height, width * 2, 3), dtype=np.uint8)
        background = (wide.to_ndarray() // 4 * 3 + fine).astype(np.uint8)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                       "x264-params": f"keyint={fps}:repeat-headers=1"}  # fmt: skip
    packetizer = H264Encoder()
    packets, sequence = [], 0
    for index in range(int(seconds * fps) + 1):
        if background is None:
            picture = np.full((height, width, 3), 40, dtype=np.uint8)
        else:
            pan = index * 4 % width
            picture = background[:, pan : pan + width].copy()
        bar = index * 8 % width
        picture[:, bar : bar + 16] = (250, 200, 0)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts = index if index < seconds * fps else None  # the last round flushes the encoder
        for packet in encoder.encode(frame if frame.pts is not None else None):
            payloads, timestamp = packetizer.pack(packet)
            for number, payload in enumerate(payloads):
                marker = 0x80 if number == len(payloads) - 1 else 0
                header = struct.pack("!BBHII", 0x80, marker | H264, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, 0x71DE0)
                packets.append((int(packet.pts) * 1_000_000 // fps, header + payload))
                sequence += 1
    return _write_pcap(path, packets)


def _write_pcap(path: Path, packets: list[tuple[int, bytes]]) -> Path:
    """A pcap of RTP ``packets`` ((microseconds, RTP bytes), in order) as Ethernet/IPv4/UDP frames."""
    records = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for micros, rtp in packets:
        frame = _frame(rtp, 6000, 6002)
        records.append(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(records))
    return path


class PcapPlayer:
    """Sends the RTP of a pcap written by this module to ``host:port`` with its timing, on a thread
    of its own, until it ends or `stop`."""

    def __init__(self, path: Path, host: str, port: int) -> None:
        self.packets = list(_read_pcap(path))
        self.target = (host, port)
        self.stopped = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            started = time.monotonic()
            for micros, rtp in self.packets:
                if self.stopped.wait(max(0.0, started + micros / 1e6 - time.monotonic())):
                    return
                sender.sendto(rtp, self.target)
                self.sent += 1

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)


def _read_pcap(path: Path):
    """(microseconds, RTP bytes) of each packet of a pcap `_write_pcap` wrote."""
    data = path.read_bytes()[24:]
    header_bytes = 14 + 20 + 8  # Ethernet, IPv4 without options, UDP
    while data:
        seconds, micros, length, _ = struct.unpack("<IIII", data[:16])
        yield seconds * 1_000_000 + micros, data[16 + header_bytes : 16 + length]
        data = data[16 + length :]


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
    """A UDP port that plays the far end's RTP receiver: keeps µ-law audio, Opus packets and
    telephone events."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.audio = bytearray()
        self.events: list[tuple[int, bool]] = []  # (event code, end bit)
        self.opus: list[bytes] = []  # the payloads of Opus packets (payload type `OPUS`)
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
            elif payload_type == OPUS:
                self.opus.append(body)
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
