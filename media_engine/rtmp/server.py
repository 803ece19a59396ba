"""The RTMP listener: accepts TCP connections and runs one `RtmpSession` per connection."""

from __future__ import annotations

import asyncio
import enum
import logging

from media_engine.control import ControlPlane
from media_engine.listeners import open_listeners
from media_engine.registry import StreamRegistry
from media_engine.rtmp.chunks import PendingBudget, RtmpLimits
from media_engine.rtmp.session import RtmpSession

logger = logging.getLogger(__name__)

# How long stop() waits for sessions to wind down after dropping their connections.
STOP_GRACE = 2.0


class State(enum.Enum):
    NEW = "new"
    SERVING = "serving"
    CLOSED = "closed"


class _Refused(asyncio.Protocol):
    """The protocol of a connection over ``max_sessions``: hang up at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]  (any stream transport, asyncio's or uvloop's)


class RtmpServer:
    """RTMP publish and play on ``host:port`` (port 0 picks a free port: read ``.port`` after start)."""

    def __init__(
        self,
        registry: StreamRegistry,
        control: ControlPlane,
        host: str = "127.0.0.1",
        port: int = 1935,
        *,
        handshake_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        idle_timeout: float | None = 60.0,
        drain_timeout: float = 10.0,
        max_sessions: int | None = None,
        limits: RtmpLimits | None = None,
        reuse_port: bool = False,
        private: tuple[str, int] | None = None,
    ) -> None:
        """``limits``: what peers may make the node hold in incomplete messages (one budget for all).
        ``reuse_port``: share ``port`` with sibling worker processes (SO_REUSEPORT: the kernel spreads
        connections); ``private``: a second listener (host, port; 0 = any) where siblings and other
        nodes reach this process in particular (read ``.private_port`` after start)."""
        self.registry = registry
        self.control = control
        self.host = host
        self._requested_port = port
        self.handshake_timeout = handshake_timeout
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.drain_timeout = drain_timeout
        self.limits = limits or RtmpLimits()
        self.max_sessions = max_sessions if max_sessions is not None else self.limits.effective_max_connections()
        self.refused = 0  # connections hung up on for the cap, since start
        self.pending = PendingBudget(self.limits.max_node_pending_bytes)
        self.state = State.NEW
        self.reuse_port = reuse_port
        self._private_address = private
        self.remote = None  # the node's RemoteStreams: players of streams other nodes hold (mirrors)
        self._server: asyncio.Server | None = None
        self._private_server: asyncio.Server | None = None
        self._sessions: set[RtmpSession] = set()

    @property
    def port(self) -> int:
        """The port actually listened on (the requested one until ``start()``)."""
        if self._server is not None and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self._requested_port

    @property
    def private_port(self) -> int | None:
        """The private listener's port (None without one)."""
        if self._private_server is not None and self._private_server.sockets:
            return self._private_server.sockets[0].getsockname()[1]
        return None

    @property
    def sessions(self) -> list[RtmpSession]:
        """The connections being served."""
        return list(self._sessions)

    def _set_state(self, state: State) -> None:
        logger.debug("rtmp server %s:%s: %s -> %s", self.host, self.port, self.state.value, state.value)
        self.state = state

    async def start(self) -> None:
        assert self.state is State.NEW, "an RtmpServer starts once"
        self._server, self._private_server = await open_listeners(
            self._new_session,
            self.host,
            self._requested_port,
            reuse_port=self.reuse_port,
            private_address=self._private_address,
        )
        if self._private_server is not None:
            logger.info("RTMP private listener on %s:%s", self._private_address[0], self.private_port)
        self._set_state(State.SERVING)
        logger.info("RTMP listening on %s:%s (at most %s connections)", self.host, self.port, self.max_sessions)

    async def stop(self) -> None:
        """Stop listening and end every session (publishers' streams are closed)."""
        if self.state is not State.SERVING:
            self._set_state(State.CLOSED)
            return
        assert self._server is not None
        self._server.close()
        if self._private_server is not None:
            self._private_server.close()
        self._set_state(State.CLOSED)
        sessions = list(self._sessions)
        for session in sessions:
            session.close()
        if sessions:
            waiters = [asyncio.ensure_future(session.wait_closed()) for session in sessions]
            _, pending = await asyncio.wait(waiters, timeout=STOP_GRACE)
            for waiter in pending:
                waiter.cancel()
        await self._server.wait_closed()
        if self._private_server is not None:
            await self._private_server.wait_closed()

    def _new_session(self) -> asyncio.Protocol:
        if self.state is not State.SERVING:
            return _Refused()
        if self.max_sessions is not None and len(self._sessions) >= self.max_sessions:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:  # not a line per refused connection
                logger.warning("RTMP: %d connection(s) refused, %d open (the cap)", self.refused, self.max_sessions)
            return _Refused()
        session = RtmpSession(
            self.registry,
            self.control,
            handshake_timeout=self.handshake_timeout,
            connect_timeout=self.connect_timeout,
            idle_timeout=self.idle_timeout,
            drain_timeout=self.drain_timeout,
            on_closed=self._sessions.discard,
            limits=self.limits,
            budget=self.pending,
            remote=self.remote,
        )
        self._sessions.add(session)
        return session
