"""Connection limits of the media HTTP port: a header read timeout, an idle keep-alive timeout, a send
timeout and a per-process connection cap answered with 503, so idle or slow clients cannot starve
real viewers.

`GuardedProtocolFactory` wraps the aiohttp server's protocol factory (what ``loop.create_server``
is given): each connection gets a `_GuardedConnection` that counts it, forwards everything to
aiohttp's handler, and closes it if its first request's headers are not complete within
``header_timeout``. Between requests aiohttp's own keep-alive timeout (``keepalive_timeout``) closes
idle connections, including one that started a request and never finished its headers. A client
that stops reading its answer for ``send_timeout`` (the socket buffer stays full) is dropped, with the
segment bytes queued for it. Beyond ``max_connections`` a connection gets a short 503 answer and is
closed; it never reaches aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_KEEPALIVE_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 10_000
DEFAULT_SEND_TIMEOUT = 30.0
# The cap never goes above this share of the process's open-file limit: RTMP, WebRTC, files, the
# database and Redis need descriptors too, and accept() failing with EMFILE stops every viewer.
FD_SHARE = 0.5
BUSY_LINGER = 2.0  # seconds a refused client gets to read its 503 before the connection is dropped
LOG_INTERVAL = 10.0  # at most one "connection refused" log line per this many seconds

_BUSY_BODY = b"too many connections\n"
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Access-Control-Allow-Origin: *\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)
_HEADER_END = b"\r\n\r\n"


@dataclass(frozen=True)
class HttpLimits:
    """``header_timeout``: seconds from accept until the first request's headers are in;
    ``keepalive_timeout``: seconds an idle keep-alive connection is kept between requests;
    ``max_connections``: open connections of the port per process (0: derived from the fd limit);
    ``send_timeout``: seconds a client may leave its answer unread (its socket buffer full)."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    send_timeout: float = DEFAULT_SEND_TIMEOUT

    def effective_max_connections(self, fd_limit: int | None = None) -> int:
        """The cap, at most `FD_SHARE` of the process's soft open-file limit (``fd_limit`` if given)."""
        if fd_limit is None:
            fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        ceiling = int(fd_limit * FD_SHARE) if fd_limit > 0 else DEFAULT_MAX_CONNECTIONS
        wanted = self.max_connections or ceiling
        return max(1, min(wanted, ceiling))


class _GuardedConnection(asyncio.Protocol):
    """One accepted connection: counted, timed until its first headers, otherwise aiohttp's own."""

    def __init__(self, factory: GuardedProtocolFactory, inner: asyncio.Protocol) -> None:
        self._factory = factory
        self._inner = inner
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen, to find the end of headers split across reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(self._factory.limits.header_timeout, self._header_timeout)
        self._inner.connection_made(transport)

    def _header_timeout(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._factory.header_timeouts += 1
            self._transport.abort()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if _HEADER_END in seen:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._timer, self._send_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._send_timer = None
        self._factory.open -= 1
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        # The socket buffer is full: the client has that long to read on before it is dropped.
        if self._send_timer is None:
            self._send_timer = asyncio.get_running_loop().call_later(
                self._factory.limits.send_timeout, self._send_timeout
            )
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        self._inner.resume_writing()

    def _send_timeout(self) -> None:
        self._send_timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._factory.send_timeouts += 1
            self._transport.abort()  # type: ignore[attr-defined]


class _Busy(asyncio.Protocol):
    """A connection over the cap: a 503, then the connection is closed (after the client's request
    is read, or after `BUSY_LINGER`), so the client reads the answer instead of a reset."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        transport.write(BUSY_RESPONSE)  # type: ignore[attr-defined]
        try:
            transport.write_eof()  # type: ignore[attr-defined]
        except (NotImplementedError, RuntimeError, OSError):  # TLS cannot half-close
            pass
        self._timer = asyncio.get_running_loop().call_later(BUSY_LINGER, transport.abort)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        pass  # the request: answered already

    def eof_received(self) -> bool | None:
        return False  # the client is done too: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()


class GuardedProtocolFactory:
    """The protocol factory of the media port: aiohttp's (``server``) behind `HttpLimits`."""

    def __init__(
        self, server: Callable[[], asyncio.Protocol], limits: HttpLimits, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.server = server
        self.limits = limits
        self.max_connections = limits.effective_max_connections()
        self.clock = clock
        self.open = 0
        self.refused = 0  # connections answered 503, since start
        self.header_timeouts = 0  # connections closed for headers too slow, since start
        self.send_timeouts = 0  # connections dropped for not reading their answers, since start
        self._refused_logged = 0
        self._last_log = float("-inf")

    def __call__(self) -> asyncio.Protocol:
        if self.open >= self.max_connections:
            self.refused += 1
            self._log_refusal()
            return _Busy()
        self.open += 1
        return _GuardedConnection(self, self.server())

    def _log_refusal(self) -> None:
        # One line per interval however many are refused: a flood must not become a flood of logs.
        now = self.clock()
        if now - self._last_log >= LOG_INTERVAL:
            count = self.refused - self._refused_logged
            logger.warning(
                "media HTTP: %d connection(s) refused with 503, %d open (the cap)", count, self.max_connections
            )
            self._refused_logged = self.refused
            self._last_log = now
