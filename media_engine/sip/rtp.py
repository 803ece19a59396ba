"""Reading RTP from a call's own media sockets (H.264 video, the Opus line): what PJSIP leaves to us."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

from aiortc.rtp import RtpPacket


def received_rtp(sock: socket.socket, stopped: threading.Event, size: int = 65536) -> Iterator[RtpPacket]:
    """The RTP packets arriving at ``sock`` (which has a timeout) until ``stopped`` is set or the socket
    is closed; datagrams that are not RTP are skipped."""
    while not stopped.is_set():
        try:
            data = sock.recv(size)
        except TimeoutError:
            continue
        except OSError:
            return
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            continue
        yield packet
