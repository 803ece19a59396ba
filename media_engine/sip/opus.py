"""The call's Opus audio, outside PJSIP (whose build has no Opus): the ``m=audio`` line of Opus the
agent writes into its SDP offer beside PJSIP's own audio line (`opus_offer_lines`), whether and where
the far end's answer took it (`answered_opus`), and `OpusLine`, the RTP socket that line names: it
decodes the far end's Opus (PyAV's libopus) to the agent's PCM, which the SIP media clock takes
frame by frame (a short buffer: lost or late packets and silences the far end does not send
become silence, the timeline keeps the clock's pace), and encodes the PCM played into the call to
Opus RTP sent from that socket (symmetric RTP).

PJSIP still runs its own audio line (G.711 or G.722): it hangs up a call in which no stream of its
own came up. So Opus is used only with a far end that takes both audio lines of the offer; one that
takes only PJSIP's gets a call as without Opus, and one that takes only Opus gets none.

PCM here is signed 16-bit mono at the agent's clock rate, in 20 ms frames.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import struct
import threading
from collections import deque

import av
import numpy as np

from media_engine.sip.rtp import received_rtp

logger = logging.getLogger(__name__)

OPUS_PAYLOAD = 111
OPUS_RATE = 48000
OPUS_CODEC = f"opus/{OPUS_RATE}/2"  # RFC 7587: always named with two channels
OPUS_FRAME = OPUS_RATE // 50  # 20 ms
OPUS_BITRATE = 32000
BUFFERED_FRAMES = 10  # 200 ms of the far end's audio waiting for the media clock; older frames are dropped
RECEIVE_TIMEOUT = 0.2


def opus_offer_lines(address: str, port: int) -> list[str]:
    """The SDP lines of a ``m=audio`` offer of Opus received at ``address:port``."""
    return [
        f"m=audio {port} RTP/AVP {OPUS_PAYLOAD}",
        f"c=IN IP4 {address}",
        f"a=rtpmap:{OPUS_PAYLOAD} {OPUS_CODEC}",
        f"a=fmtp:{OPUS_PAYLOAD} useinbandfec=1",
        "a=ptime:20",
        "a=sendrecv",
    ]


def answered_opus(sdp: str, index: int) -> tuple[tuple[str, int], int] | None:
    """Where the far end takes Opus (host, port) and its payload type, from its answer ``sdp`` whose
    ``index``-th media line answers our Opus line; None when it refused that line or Opus."""
    session_host, sections = "", []
    for line in sdp.replace("\r", "").split("\n"):
        if line.startswith("m="):
            sections.append({"fields": line[2:].split(), "host": "", "rtpmap": {}})
        elif line.startswith("c=") and len(fields := line.split()) >= 3:
            if sections:
                sections[-1]["host"] = fields[2]
            else:
                session_host = fields[2]
        elif line.startswith("a=rtpmap:") and sections:
            payload, _, name = line[len("a=rtpmap:") :].partition(" ")
            sections[-1]["rtpmap"][payload] = name.strip()
    if index >= len(sections):
        return None
    section = sections[index]
    fields = section["fields"]
    if len(fields) < 4 or fields[0] != "audio" or fields[1] == "0":
        return None
    for payload in fields[3:]:
        if section["rtpmap"].get(payload, "").lower().startswith("opus/48000"):
            host = section["host"] or session_host
            return ((host, int(fields[1])), int(payload)) if host else None
    return None


class OpusLine:
    """A UDP socket for the call's Opus RTP: once started, a thread decodes what arrives into
    20 ms PCM frames that `next_frame` hands out; `send_pcm` encodes PCM and sends it to the far
    end (`set_destination`). Packets older than the last one of their RTP stream are dropped, not
    reordered."""

    def __init__(self, bind_host: str, clock_rate: int) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind((bind_host or "0.0.0.0", 0))
        self.socket.settimeout(RECEIVE_TIMEOUT)
        self.port = self.socket.getsockname()[1]
        self.clock_rate = clock_rate
        self.frame_bytes = clock_rate // 50 * 2
        self.received: deque[bytes] = deque(maxlen=BUFFERED_FRAMES)
        self.destination: tuple[str, int] | None = None
        self.payload_type = OPUS_PAYLOAD
        self.received_packets = 0
        self.sent_packets = 0
        self.outgoing: queue.Queue[bytes | None] = queue.Queue(maxsize=50)
        self.stopped = threading.Event()
        self.threads = [
            threading.Thread(target=self._receive, name="opus-receiver", daemon=True),
            threading.Thread(target=self._send, name="opus-sender", daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.outgoing.put(None)
        for thread in self.threads:
            if thread.is_alive():
                thread.join(timeout=5)
        self.socket.close()

    def set_destination(self, destination: tuple[str, int] | None, payload_type: int = OPUS_PAYLOAD) -> None:
        """Where our Opus goes (None: nowhere), with the payload type the far end's answer gave it."""
        self.destination, self.payload_type = destination, payload_type

    def next_frame(self) -> bytes | None:
        """The far end's next 20 ms of PCM, or None when none came in time (the caller plays silence)."""
        try:
            return self.received.popleft()
        except IndexError:
            return None

    def send_pcm(self, pcm: bytes) -> None:
        """20 ms of PCM for the far end; never blocks (the SIP media clock calls it)."""
        if self.destination is not None:
            try:
                self.outgoing.put_nowait(pcm)
            except queue.Full:
                logger.debug("Opus sender is behind: 20 ms dropped")

    # --- the far end's Opus -> PCM ---------------------------------------------------------
    def _receive(self) -> None:
        decoder = av.CodecContext.create("libopus", "r")
        decoder.sample_rate, decoder.layout = OPUS_RATE, "stereo"
        resampler = av.AudioResampler(format="s16", layout="mono", rate=self.clock_rate)
        pending, last_timestamp, ssrc = b"", None, None
        for packet in received_rtp(self.socket, self.stopped, 4096):
            if packet.payload_type != self.payload_type or not packet.payload:
                continue
            self.received_packets += 1
            if packet.ssrc != ssrc:  # the far end's (first or next) RTP stream: a clock of its own
                ssrc, last_timestamp = packet.ssrc, None
            if last_timestamp is not None and (packet.timestamp - last_timestamp) & 0xFFFFFFFF >= 0x80000000:
                continue  # older than the last one: its time has been played already
            last_timestamp = packet.timestamp
            try:
                frames = decoder.decode(av.Packet(packet.payload))
            except av.FFmpegError as error:
                logger.debug("an Opus packet did not decode: %s", error)
                continue
            for frame in frames:
                for resampled in resampler.resample(frame):
                    pending += resampled.to_ndarray().tobytes()
            while len(pending) >= self.frame_bytes:
                self.received.append(pending[: self.frame_bytes])
                pending = pending[self.frame_bytes :]

    # --- PCM -> Opus for the far end -------------------------------------------------------
    def _send(self) -> None:
        encoder = av.CodecContext.create("libopus", "w")
        encoder.sample_rate, encoder.layout, encoder.format = OPUS_RATE, "mono", "s16"
        encoder.bit_rate = OPUS_BITRATE
        resampler = av.AudioResampler(format="s16", layout="mono", rate=OPUS_RATE)
        ssrc = int.from_bytes(os.urandom(4), "big")
        sequence, timestamp = int.from_bytes(os.urandom(2), "big"), int.from_bytes(os.urandom(4), "big")
        samples, opus_samples, pending = 0, 0, np.zeros(0, dtype=np.int16)
        while (pcm := self.outgoing.get()) is not None:
            frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm, dtype=np.int16).reshape(1, -1), format="s16",
                                               layout="mono")  # fmt: skip
            frame.sample_rate, frame.pts = self.clock_rate, samples
            samples += frame.samples
            for resampled in resampler.resample(frame):
                pending = np.concatenate([pending, resampled.to_ndarray().reshape(-1)])
            while len(pending) >= OPUS_FRAME:
                chunk, pending = pending[:OPUS_FRAME], pending[OPUS_FRAME:]
                opus_frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
                opus_frame.sample_rate, opus_frame.pts = OPUS_RATE, opus_samples
                opus_samples += OPUS_FRAME
                for encoded in encoder.encode(opus_frame):
                    destination = self.destination
                    if destination is None:
                        continue
                    header = struct.pack("!BBHII", 0x80, self.payload_type, sequence, timestamp & 0xFFFFFFFF, ssrc)
                    try:
                        self.socket.sendto(header + bytes(encoded), destination)
                        self.sent_packets += 1
                    except OSError as error:
                        logger.debug("sending Opus to %s: %s", destination, error)
                    sequence = (sequence + 1) & 0xFFFF
                    timestamp = (timestamp + OPUS_FRAME) & 0xFFFFFFFF
