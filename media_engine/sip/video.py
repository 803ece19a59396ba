"""The call's H.264 video, outside PJSIP (whose build has no video): the ``m=video`` line the agent
writes into its SDP offer (`video_offer_lines`), whether and where the far end's answer took it
(`answered_h264`, `video_destination`); `H264Receiver`, the RTP socket that line names: it
reassembles the far end's H.264 (RFC 6184: single NAL units, STAP-A, FU-A) into access units,
decodes them and hands the pictures out with their RTP time in seconds (one clock across the
far end's RTP streams, should a re-INVITE start another); and `H264Sender`, which
plays a live stream's video into the call from that socket (symmetric RTP), re-encoded to the
Constrained Baseline H.264 the offer names by aiortc's encoder and packetizer.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import av
from aiortc.codecs.h264 import H264Encoder, H264PayloadDescriptor
from aiortc.rtp import RtpPacket

from media_engine.sip.rtp import received_rtp

logger = logging.getLogger(__name__)

H264_PAYLOAD = 96
H264_CLOCK_RATE = 90000
H264_CODEC = f"H264/{H264_CLOCK_RATE}"
# Constrained Baseline level 3.1, non-interleaved mode: what SIP video phones commonly offer.
H264_FMTP = "profile-level-id=42e01f;packetization-mode=1"
RECEIVE_BUFFER = 2 * 1024 * 1024  # a keyframe arrives as a burst of packets
NEXT_PICTURE = 0.04  # seconds from the last picture of one RTP stream to the first of the next
KEYFRAME_INTERVAL = 2.0  # seconds between the keyframes sent: a far end that lost one recovers


def video_offer_lines(address: str, port: int) -> list[str]:
    """The SDP lines of a ``m=video`` offer of H.264 received at ``address:port``."""
    return [
        f"m=video {port} RTP/AVP {H264_PAYLOAD}",
        f"c=IN IP4 {address}",
        f"a=rtpmap:{H264_PAYLOAD} {H264_CODEC}",
        f"a=fmtp:{H264_PAYLOAD} {H264_FMTP}",
        "a=sendrecv",
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


def video_destination(sdp: str) -> tuple[str, int] | None:
    """Where the far end takes its video (host, port), from its answer ``sdp``; None without one."""
    session_host, video_host, port = "", "", 0
    section = "session"
    for line in sdp.replace("\r", "").split("\n"):
        if line.startswith("m="):
            if section == "video":
                break  # the video line's own section ended
            fields = line[2:].split()
            section = "video" if fields[0] == "video" and len(fields) > 1 and fields[1] != "0" else "other"
            port = int(fields[1]) if section == "video" else 0
        elif line.startswith("c=") and len(fields := line.split()) >= 3:
            if section == "session":
                session_host = fields[2]
            elif section == "video":
                video_host = fields[2]
    host = video_host or session_host
    return (host, port) if port and host else None


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
        self.clock_base = 0.0  # seconds at the current RTP stream's first timestamp
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
        access_unit, timestamp, first_timestamp, ssrc = b"", None, None, None
        for packet in received_rtp(self.socket, self.stopped):
            if packet.payload_type != H264_PAYLOAD:
                continue
            try:
                _, nal_units = H264PayloadDescriptor.parse(packet.payload)
            except ValueError as error:
                logger.debug("ignored an RTP packet that is not H.264: %s", error)
                continue
            self.packets += 1
            if packet.ssrc != ssrc:
                # Another RTP stream (the far end's video started again after a re-INVITE): its
                # clock goes on from where the last one was, so the pictures' times keep rising.
                if timestamp is not None and first_timestamp is not None:
                    self.clock_base = self._seconds(timestamp, first_timestamp) + NEXT_PICTURE
                access_unit, timestamp, first_timestamp, ssrc = b"", None, None, packet.ssrc
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

    def send(self, rtp: bytes, destination: tuple[str, int]) -> None:
        """Sends from this socket: the far end sees our video come from where it sends its own."""
        try:
            self.socket.sendto(rtp, destination)
        except OSError as error:
            logger.debug("sending video to %s: %s", destination, error)

    def _seconds(self, timestamp: int, first_timestamp: int) -> float:
        return self.clock_base + ((timestamp - first_timestamp) & 0xFFFFFFFF) / H264_CLOCK_RATE

    def _decode(self, access_unit: bytes, timestamp: int, first_timestamp: int) -> None:
        seconds = self._seconds(timestamp, first_timestamp)
        try:
            pictures = self.decoder.decode(av.Packet(access_unit))
        except av.FFmpegError as error:
            logger.debug("an access unit of the far end's video did not decode: %s", error)
            return
        for picture in pictures:
            self.pictures += 1
            self.on_picture(picture, seconds)


class H264Sender:
    """A thread that decodes the video of ``source`` (the engine's RTMP play URL of a live stream)
    and sends it into the call as H.264 RTP through ``send(rtp)``, at the source's pace, until
    `stop` or the source's end. A source without video sends nothing."""

    def __init__(self, source: str, send: Callable[[bytes], None]) -> None:
        self.source = source
        self.send = send
        self.encoder = H264Encoder()
        self.ssrc = int.from_bytes(os.urandom(4), "big")
        self.sequence = int.from_bytes(os.urandom(2), "big")
        self.sent_pictures = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="h264-sender", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        try:
            with av.open(self.source, "r", timeout=10.0) as container:
                if not container.streams.video:
                    logger.info("%s has no video: none is sent into the call", self.source)
                    return
                last_keyframe = -KEYFRAME_INTERVAL
                for picture in container.decode(container.streams.video[0]):
                    if self.stopped.is_set():
                        return
                    if picture.pts is None:
                        continue
                    keyframe = time.monotonic() - last_keyframe >= KEYFRAME_INTERVAL
                    if keyframe:
                        last_keyframe = time.monotonic()
                    self._send_picture(picture, keyframe)
        except (av.FFmpegError, OSError) as error:
            logger.warning("video into the call from %s failed: %s", self.source, error)

    def _send_picture(self, picture: av.VideoFrame, keyframe: bool) -> None:
        payloads, timestamp = self.encoder.encode(picture, force_keyframe=keyframe)
        for number, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=H264_PAYLOAD,
                marker=int(number == len(payloads) - 1),
                sequence_number=self.sequence,
                timestamp=timestamp & 0xFFFFFFFF,
                ssrc=self.ssrc,
                payload=payload,
            )
            self.sequence = (self.sequence + 1) & 0xFFFF
            self.send(packet.serialize())
        if payloads:
            self.sent_pictures += 1
