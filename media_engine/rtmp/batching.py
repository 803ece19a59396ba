"""Fewer, larger reads of a publisher's socket: ``SO_RCVLOWAT`` set to a few milliseconds of its bitrate.

An encoder writes each RTMP chunk as it comes (an audio frame every 21 ms, a video frame in a few
chunks): read as they arrive, a 2.6 Mb/s stream wakes the event loop over a hundred times a second,
and in Python the cost of a wake-up (the loop, the read, the callbacks) is most of the cost of ingest.
With the socket's low-water mark at ``BATCH_SECONDS`` of the measured bitrate, the kernel wakes us up
once that much has arrived: a read then carries several chunks, for at most that much added delay.

A publisher that pauses must not leave its last bytes waiting for more: a check every
``CHECK_INTERVAL`` puts the mark back to one byte when nothing came for ``STALL_SECONDS``
(an end of stream, FIN, always wakes the reader anyway). One timer per publishing session.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

logger = logging.getLogger(__name__)

BATCH_SECONDS = 0.025
# The bitrate is measured over windows this long (seconds).
RATE_WINDOW = 1.0
MAX_LOW_WATER = 64 * 1024
CHECK_INTERVAL = 0.1
# Well above the time between two batched reads of a flowing stream (video frames come in bursts).
STALL_SECONDS = 0.2
# The mark is changed only when the wanted value differs this much (relative): few setsockopt calls.
CHANGE_RATIO = 0.25


class ReadBatching:
    """Adapts the receive low-water mark of one publisher's socket to its bitrate."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop, clock: Callable[[], float]) -> None:
        self._socket = sock
        self._loop = loop
        self._clock = clock
        self._low_water = 1
        now = clock()
        self._window_start = now
        self._window_bytes = 0
        self._last_read = now
        self._timer: asyncio.TimerHandle | None = loop.call_later(CHECK_INTERVAL, self._check)

    @classmethod
    def for_transport(
        cls, transport: asyncio.BaseTransport, loop: asyncio.AbstractEventLoop, clock: Callable[[], float]
    ) -> ReadBatching | None:
        """Batching for a TCP transport's socket, or None where there is no such socket option."""
        sock = transport.get_extra_info("socket")
        if sock is None or not hasattr(socket, "SO_RCVLOWAT") or sock.type != socket.SOCK_STREAM:
            return None
        return cls(sock, loop, clock)

    @property
    def low_water(self) -> int:
        return self._low_water

    def observe(self, nbytes: int, now: float) -> None:
        """A read of ``nbytes`` at ``now`` (the session's clock)."""
        self._last_read = now
        self._window_bytes += nbytes
        elapsed = now - self._window_start
        if elapsed >= RATE_WINDOW:
            wanted = int(self._window_bytes / elapsed * BATCH_SECONDS)
            self._window_start = now
            self._window_bytes = 0
            self._set(max(1, min(MAX_LOW_WATER, wanted)))

    def close(self) -> None:
        """The session stops publishing: reads as they come again."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._set(1, force=True)

    def _check(self) -> None:
        self._timer = self._loop.call_later(CHECK_INTERVAL, self._check)
        if self._low_water > 1 and self._clock() - self._last_read >= STALL_SECONDS:
            self._set(1, force=True)
            self._window_start = self._clock()  # measure afresh once data flows again
            self._window_bytes = 0

    def _set(self, value: int, *, force: bool = False) -> None:
        current = self._low_water
        if value == current or (not force and abs(value - current) < CHANGE_RATIO * current and value > 1):
            return
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, value)
        except OSError as error:  # (a closed socket)
            logger.debug("SO_RCVLOWAT %s not set: %s", value, error)
            return
        self._low_water = value
