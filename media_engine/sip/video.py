"""The call's H.264 video, outside PJSIP (whose build has no video): the ``m=video`` line the agent
writes into its SDP offer (`video_offer_lines`), whether the far end's answer took it
(`answered_h264`), and `H264Receiver`, the RTP socket that line names: it reassembles the far
end's H.264 (RFC 6184: single NAL units, STAP-A, FU-A) into access units, decodes them and hands
the pictures out with their RTP time in seconds.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

import av
from aiortc.codecs.h264 import H264PayloadDescriptor
from aiortc.rtp import RtpPacket

logger = logging.getLogger(__name__)

H264_PAYLOAD = 96
H264_CLOCK_RATE = 90000
H264_CODEC = f"H264/{H264_CLOCK_RATE}"
# Constrained Baseline level 3.1, non-interleaved mode: what SIP video phones commonly offer.
H264_FMTP = "profile-level-id=42e01f;packetization-mode=1"
RECEIVE_BUFFER = 2 * 1024 * 1024  # a keyframe arrives as a burst of packets


def video_offer_lines(address: str, port: int) -> list[str]:
    """The SDP lines of a ``m=video`` offer of H.264 received at ``address:port``."""
    return [
        f"m=video {port} RTP/AVP {H264_PAYLOAD}",
        f"c=IN IP4 {address}",
        f"a=rtpmap:{H264_PAYLOAD} {H264_CODEC}",
        f"a=fmtp:{H264_PAYLOAD} {H264_FMTP}",
        "a=recvonly",
    ]


def answered_h264(sdp: str) -> bool:
    """Whether ``sdp`` (the far end's answer) has an active ``m=video`` line with H.264."""
    video, payloads = False, []
    for line in sdp.replace("\r", "").split("\n"):
        if line.startswith("m="):
            fields = line[2:].split()
            video = fields[0] == "video" and len(fields) > 3 and fields[1] != "0"
            payloads = fields[3:] if video else []
        elif video and line.startswith("a=rtpmap:"):
            payload, _, name = line[len("a=rtpmap:") :].partition(" ")
            if payload in payloads and name.strip().upper().startswith("H264/"):
                return True
    return False


class H264Receiver:
    """A UDP socket for the far end's H.264 RTP and a thread that decodes it: ``on_picture(frame,
    seconds)`` gets each decoded `av.VideoFrame` with its RTP time (seconds since the first one).
    Packets out of order within an access unit are not reordered: a damaged access unit is
    dropped by the decoder, and the next keyframe heals the picture."""

    def __init__(self, bind_host: str, on_picture: Callable[[av.VideoFrame, float], None]) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.socket.bind((bind_host or "0.0.0.0", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.on_picture = on_picture
        self.decoder = av.CodecContext.create("h264", "r")
        self.packets = 0
        self.pictures = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="h264-receiver", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        self.socket.close()

    def _run(self) -> None:
        access_unit, timestamp, first_timestamp = b"", None, None
        while not self.stopped.is_set():
            try:
                data = self.socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                packet = RtpPacket.parse(data)
                if packet.payload_type != H264_PAYLOAD:
                    continue
                _, nal_units = H264PayloadDescriptor.parse(packet.payload)
            except ValueError as error:
                logger.debug("ignored an RTP packet that is not H.264: %s", error)
                continue
            self.packets += 1
            if timestamp is not None and packet.timestamp != timestamp and access_unit:
                # A new picture began without the marker bit of the last one (its last packet was lost).
                self._decode(access_unit, timestamp, first_timestamp)
                access_unit = b""
            if first_timestamp is None:
                first_timestamp = packet.timestamp
            timestamp = packet.timestamp
            access_unit += nal_units
            if packet.marker:
                self._decode(access_unit, timestamp, first_timestamp)
                access_unit = b""

    def _decode(self, access_unit: bytes, timestamp: int, first_timestamp: int) -> None:
        seconds = ((timestamp - first_timestamp) & 0xFFFFFFFF) / H264_CLOCK_RATE
        try:
            pictures = self.decoder.decode(av.Packet(access_unit))
        except av.FFmpegError as error:
            logger.debug("an access unit of the far end's video did not decode: %s", error)
            return
        for picture in pictures:
            self.pictures += 1
            self.on_picture(picture, seconds)
