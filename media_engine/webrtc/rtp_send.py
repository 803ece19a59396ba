"""The send path of a WHEP viewer's prepared frames: what aiortc's `RTCRtpSender._run_rtp` does per
packet, done per frame and called by the fanout directly.

aiortc sends each RTP packet through a task per sender and five awaited coroutines (sender, DTLS
transport, ICE transport, aioice connection, STUN protocol), building an `RtpPacket` object and its
header extensions per packet. For a `PacketTrack` (see `fanout.install`) `FrameSender` instead
writes each packet into a buffer of its own (the header with one `struct.pack_into`, the header
extensions, mid and abs-send-time, made once per frame, then the shared payload), protects it there
in place with libsrtp and the DTLS transport's SRTP session, and hands it to the nominated ICE pair's
datagram transport, synchronously, when the fanout offers the frame. It reaches into private parts
of aiortc 1.16 (name-mangled sender fields) and pylibsrtp 1.0 (`_binding`, `Session._srtp`): check
them when either is upgraded (tests/media_engine/webrtc/test_whep_send.py does).
aiortc still owns signalling, ICE, DTLS and RTCP: sender reports read the counters kept here, NACKs
are answered from this history (with RTX when negotiated), and `stop()` ends the sender as before.

A frame's packets are protected one after the other into one buffer, and each run of equally long
packets (the last may be shorter) leaves in one ``sendmsg`` with UDP generic segmentation offload
(``UDP_SEGMENT``, Linux 4.18+): the kernel cuts it into the datagrams, so a 720p frame of ~9 packets
costs a viewer two or three system calls instead of nine. Where the kernel or the route refuses it, the
sender goes back to a ``sendto`` per packet for good.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import struct
from asyncio.selector_events import _SelectorDatagramTransport

from aiortc import clock
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpsender import RTCEncodedFrame, RTCRtpSender, random_sequence_number
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket, wrap_rtx
from aiortc.utils import random32
from pylibsrtp import SRTP_MAX_TRAILER_LEN
from pylibsrtp import Error as SrtpError
from pylibsrtp._binding import ffi, lib

logger = logging.getLogger(__name__)

RTP_HEADER = struct.Struct("!BBHII")
SRTP_BUFFER = 1500  # pylibsrtp's own limit on a packet and its trailer
# Packets of a frame protected into one buffer before they are sent (one or more GSO sends): the kernel
# takes at most 64 segments and 64 KB per send; 16 cover a 720p P-frame, larger frames take several.
BATCH_PACKETS = 16
SOL_UDP = 17
UDP_SEGMENT = 103  # <linux/udp.h>
_SEGMENT_SIZE = struct.Struct("=H")
# What a kernel or route without UDP GSO answers a segmented send (no offload on the device, too old).
_GSO_REFUSED = {errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EMSGSIZE}
MAX_BUFFERED = 1 << 20  # bytes a viewer's socket may hold unsent before it skips to the next keyframe
_ABS_SEND_TIME_PROBE = 0xA5C3E1


class FrameSender:
    """Sends one viewer's frames of one kind for ``sender`` (an `RTCRtpSender` of a `PacketTrack`)."""

    def __init__(self, sender: RTCRtpSender, payload_type: int) -> None:
        self.sender = sender
        self.dtls = sender.transport
        self.ended = asyncio.Event()
        self.sequence_number = random_sequence_number()
        self.timestamp_origin = random32()
        # What each recent packet was made of, for NACKs: (sequence number, timestamp, marker, payload).
        self.history: list[tuple[int, int, bool, bytes] | None] = [None] * RTP_HISTORY_SIZE
        self._header_bytes(payload_type)
        # SRTP in place in a buffer of our own: what pylibsrtp's `Session.protect` does, without its
        # per-call allocation and checks (the session is the DTLS transport's, bound in `send`).
        self._srtp_session = None
        self._srtp_context = None
        # Video frames span several packets (a batch of them); audio frames are one packet each.
        self._srtp_data = ffi.new("char[]", SRTP_BUFFER * (BATCH_PACKETS if sender.kind == "video" else 1))
        self._srtp_buffer = ffi.buffer(self._srtp_data)
        self._srtp_view = memoryview(self._srtp_buffer)
        self._srtp_length = ffi.new("int *")
        self.gso = True  # until the kernel refuses a segmented send
        self.gso_sends = 0  # sends that carried several packets

    def _header_bytes(self, payload_type: int) -> None:
        """The header's first bytes and its extension block as aiortc writes them for this sender, and
        where abs-send-time sits in that block (None when the peer did not negotiate it)."""
        sender = self.sender
        extensions_map = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]

        def serialize(abs_send_time: int) -> bytes:
            packet = RtpPacket(payload_type=payload_type, ssrc=sender._ssrc)
            packet.extensions.abs_send_time = abs_send_time
            packet.extensions.mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
            return packet.serialize(extensions_map)

        plain, probed = serialize(0), serialize(_ABS_SEND_TIME_PROBE)
        self.first_byte = plain[0]
        self.payload_type = payload_type
        self.extensions = plain[RTP_HEADER.size :]
        self.abs_send_time_at = None
        marker = _ABS_SEND_TIME_PROBE.to_bytes(3, "big")
        at = probed.find(marker, RTP_HEADER.size)
        if at >= 0 and plain[at : at + 3] == b"\0\0\0":
            self.abs_send_time_at = at - RTP_HEADER.size

    def send(self, frame: RTCEncodedFrame) -> bool:
        """Send ``frame`` now; False if the viewer cannot keep up (its socket holds too much unsent).
        A failure ends this sender only (the fanout goes on with the other viewers)."""
        try:
            return self._send(frame)
        except (SrtpError, ValueError, OSError) as error:
            logger.info("whep sender %08x: %s", self.sender._ssrc, error)
            self.ended.set()
            return True

    def _send(self, frame: RTCEncodedFrame) -> bool:
        sender = self.sender
        if not sender._enabled or self.ended.is_set():
            return True
        dtls = self.dtls
        if dtls._state != DtlsState.CONNECTED:
            self.ended.set()  # as aiortc's sender ends on ConnectionError
            return True
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            self.ended.set()
            return True
        transport, address = pair.protocol.transport, pair.remote_addr
        if transport.get_write_buffer_size() > MAX_BUFFERED:
            return False
        ntp_time = clock.current_ntp_time()
        extensions = self.extensions
        if self.abs_send_time_at is not None:
            at = self.abs_send_time_at
            extensions = extensions[:at] + ((ntp_time >> 14) & 0xFFFFFF).to_bytes(3, "big") + extensions[at + 3 :]
        timestamp = (self.timestamp_origin + frame.timestamp) & 0xFFFFFFFF
        if dtls._tx_srtp is not self._srtp_session:
            self._srtp_session = dtls._tx_srtp
            self._srtp_context = self._srtp_session._srtp[0]
        # Each packet is written into the SRTP buffer (header, extensions, payload) after the ones before
        # it, protected there in place, and sent from it in runs: no packet object and no copy of the
        # payload but that one.
        context, data, buffer, length = self._srtp_context, self._srtp_data, self._srtp_buffer, self._srtp_length
        # Sent as a view of the buffer to asyncio's own UDP transport, which sends it (or copies it) at
        # once; any other (a TURN relay's sends later, from a task) gets a copy.
        direct = isinstance(transport, _SelectorDatagramTransport)
        out = self._srtp_view if direct else buffer
        # Segmented sends go to the socket itself, only while asyncio holds nothing unsent for it (order).
        segmented = self.gso and direct and len(buffer) > SRTP_BUFFER and not transport.get_write_buffer_size()
        protect, pack_into, history = lib.srtp_protect, RTP_HEADER.pack_into, self.history
        first, payload_type, ssrc = self.first_byte, self.payload_type, sender._ssrc
        marked = payload_type | 0x80  # the marker bit: the frame's last packet
        header_size = RTP_HEADER.size + len(extensions)
        limit = SRTP_BUFFER - SRTP_MAX_TRAILER_LEN - header_size
        capacity = len(buffer) - SRTP_BUFFER  # where a next packet still fits
        sequence_number = self.sequence_number
        payloads = frame.payloads
        last = len(payloads) - 1
        octets = wire_bytes = 0
        run_start = offset = segment = 0  # the run not sent yet: buffer[run_start:offset] of `segment`-long packets
        for i, payload in enumerate(payloads):
            size = len(payload)
            if size > limit:
                raise ValueError("RTP packet too long for SRTP")
            if offset > capacity:
                self._flush(transport, address, out, run_start, offset, segment)
                run_start = offset = segment = 0
            marker = i == last
            pack_into(buffer, offset, first, marked if marker else payload_type, sequence_number, timestamp, ssrc)
            buffer[offset + RTP_HEADER.size : offset + header_size] = extensions
            buffer[offset + header_size : offset + header_size + size] = payload
            history[sequence_number % RTP_HISTORY_SIZE] = (sequence_number, timestamp, marker, payload)
            length[0] = header_size + size
            error = protect(context, data + offset if offset else data, length)
            if error:
                raise SrtpError(f"srtp_protect failed: {error}")
            protected = length[0]
            wire_bytes += protected
            octets += size
            sequence_number = (sequence_number + 1) & 0xFFFF
            if not segmented:
                transport.sendto(out[:protected], address)
                continue
            if segment and protected > segment:  # longer than the run's packets: the run goes first
                self._flush(transport, address, out, run_start, offset, segment)
                run_start, segment = offset, 0
            offset += protected
            if not segment:
                segment = protected
            elif protected < segment:  # a shorter packet ends a run
                self._flush(transport, address, out, run_start, offset, segment)
                run_start, segment = offset, 0
        if segmented and offset > run_start:
            self._flush(transport, address, out, run_start, offset, segment)
        self.sequence_number = sequence_number
        count = len(payloads)
        sender._RTCRtpSender__ntp_timestamp = ntp_time
        sender._RTCRtpSender__rtp_timestamp = timestamp
        sender._RTCRtpSender__octet_count += octets
        sender._RTCRtpSender__packet_count += count
        dtls._RTCDtlsTransport__tx_bytes += wire_bytes
        dtls._RTCDtlsTransport__tx_packets += count
        return True

    def _flush(self, transport, address, out: memoryview, start: int, end: int, segment: int) -> None:
        """Send ``out[start:end]``: packets of ``segment`` bytes (the last may be shorter), in one
        segmented send when there are several."""
        if end - start <= segment:
            transport.sendto(out[start:end], address)
            return
        try:
            transport._sock.sendmsg([out[start:end]], [(SOL_UDP, UDP_SEGMENT, _SEGMENT_SIZE.pack(segment))], 0, address)
            self.gso_sends += 1
            return
        except BlockingIOError:
            pass  # the socket's buffer is full: asyncio keeps them (copies) until it drains
        except OSError as error:
            if error.errno in _GSO_REFUSED:
                logger.info("whep sender %08x: no segmented sends (%s): one per packet", self.sender._ssrc, error)
                self.gso = False
            # (anything else, a refused port say, asyncio's own sends below meet and report as usual)
        for at in range(start, end, segment):
            transport.sendto(out[at : min(at + segment, end)], address)

    async def retransmit(self, sequence_number: int) -> None:
        """Answer a NACK: the packet again, wrapped in RTX when the peer negotiated it."""
        sent = self.history[sequence_number % RTP_HISTORY_SIZE]
        if sent is None or sent[0] != sequence_number:
            return
        _, timestamp, marker, payload = sent
        sender = self.sender
        extensions_map = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
        header = RTP_HEADER.pack(
            self.first_byte, self.payload_type | 0x80 if marker else self.payload_type, sequence_number, timestamp,
            sender._ssrc,
        )  # fmt: skip
        packet = header + self.extensions + payload
        rtx_payload_type = sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
        if rtx_payload_type is not None:
            rtx = wrap_rtx(
                RtpPacket.parse(packet, extensions_map),
                payload_type=rtx_payload_type,
                sequence_number=sender._RTCRtpSender__rtx_sequence_number,  # type: ignore[attr-defined]
                ssrc=sender._rtx_ssrc,
            )
            sender._RTCRtpSender__rtx_sequence_number = (rtx.sequence_number + 1) & 0xFFFF
            packet = rtx.serialize(extensions_map)
        await self.dtls._send_rtp(packet)


async def run_frame_sender(sender: RTCRtpSender, track, payload_type: int) -> None:
    """In place of aiortc's `_run_rtp` for a `PacketTrack`: the track pushes frames to a `FrameSender`
    until the track ends, the transport closes or the sender is stopped."""
    frame_sender = FrameSender(sender, payload_type)
    sender._frame_sender = frame_sender
    sender._RTCRtpSender__rtp_started.set()  # type: ignore[attr-defined]
    try:
        if track.readyState == "live":  # (a stream that ended before the connection did: nothing to send)
            track.attach_sender(frame_sender)
            await frame_sender.ended.wait()
    except asyncio.CancelledError:
        pass
    finally:
        track.detach_sender(frame_sender)
        track.stop()
        sender._RTCRtpSender__track = None
        sender._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]
