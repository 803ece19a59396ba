"""Running one segmenter per live stream of a registry: what the HLS (TS) and LL-HLS (fMP4)
packagers share.

`StreamPackager` subscribes to a stream (so no packet is missed while its application's config is
looked up), then feeds every packet inline to the stream's segmenter, and keeps an ended stream's
segmenter for a while (``linger``) so that players can finish. Subclasses say which segmenter to build
(`make_segmenter`) and how long one segment of it lasts.

When a stream's packaging starts: at once when it starts (the default), or, ``on_demand``, at the
first request for its output (`watch`), and it stops again once nobody has asked for it for
``idle_timeout`` seconds. An unwatched stream then costs no packaging CPU and holds no segments;
its first request is answered from the stream's recent packets: the `history.PacketHistory` of
the last seconds (whole GOPs, kept as files) when the packager has one, then the stream's cached GOP
(the packets since the last keyframe), so a player's first playlist already lists a window.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from media_engine.control import ApplicationConfig, ControlPlane
from media_engine.hls.history import PacketHistory, Replay
from media_engine.hls.store import FileFolder, Files, MemoryFiles
from media_engine.packets import MediaPacket
from media_engine.registry import LiveStream, StreamKey, StreamRegistry, Subscription

logger = logging.getLogger(__name__)

# How long the playlist and segments of an ended stream stay available (at least).
DEFAULT_LINGER = 30.0
# On demand: packaging of a live stream stops after this long without a request (at least; and
# never before three segment durations, so that a player reloading once per segment never loses it).
DEFAULT_IDLE_TIMEOUT = 30.0
IDLE_TIMEOUT_SEGMENTS = 3
# Timed metadata waiting for a segmenter that is being set up is bounded.
MAX_PENDING_EVENTS = 64

ConfigLookup = Callable[[StreamKey], "Awaitable[ApplicationConfig | None] | ApplicationConfig | None"]


class Segmenter(Protocol):
    window: int
    backlog_ms: int  # how old the first packet fed is (ms): its output is dated that much earlier

    def feed(self, packet: MediaPacket) -> None: ...

    def finish(self) -> None: ...

    async def wait_ready(self, timeout: float) -> bool: ...

    def release(self) -> None: ...


S = TypeVar("S", bound=Segmenter)


class _Session(Generic[S]):
    """The packaging of one publication of a stream."""

    def __init__(self, stream: LiveStream, subscription: Subscription) -> None:
        self.stream = stream
        self.subscription = subscription
        self.segmenter: S | None = None
        self.configured = asyncio.Event()
        self.caught_up = asyncio.Event()  # the segmenter has had what came before it (or never will)
        self.ended = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.drop_handle: asyncio.TimerHandle | None = None
        self.idle_handle: asyncio.TimerHandle | None = None
        self.config: ApplicationConfig | None = None
        self.history_mark = 0  # where the stream's history was when this session subscribed
        self.pending_events: list[bytes] = []  # timed metadata sent before the segmenter exists


class StreamPackager(abc.ABC, Generic[S]):
    """Runs a segmenter for every live stream of a registry.

    ``config_lookup(key)`` gives the `ApplicationConfig` of a stream (sync or async; None: the
    stream is not packaged). Must be used from the event loop's thread: `attach()` (and the
    registry's listeners) start tasks on the running loop. An ended stream's segmenter stays
    available for ``linger`` seconds (default: 30 s, or two playlist windows if longer).
    ``on_demand``: package a stream only while it is requested (see the module docstring).
    ``folder``: segments and parts are files there (out of the Python heap); default: in memory.
    ``history``: the recent packets a segmenter starts from (its window's worth), on demand.
    """

    label = "HLS"  # in logs and task names

    def __init__(
        self,
        registry: StreamRegistry,
        config_lookup: ConfigLookup,
        *,
        linger: float | None = None,
        clock: Callable[[], float] = time.time,
        on_demand: bool = False,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        folder: FileFolder | None = None,
        history: PacketHistory | None = None,
    ) -> None:
        self.registry = registry
        self.config_lookup = config_lookup
        self.linger = linger
        self.clock = clock
        self.on_demand = on_demand
        self.idle_timeout = idle_timeout
        self.folder = folder
        self.history = history
        self._sessions: dict[StreamKey, _Session[S]] = {}
        self._watched_at: dict[StreamKey, float] = {}  # on demand: last request (loop time) per stream
        self._paused: set[StreamKey] = set()
        self._attached = False
        self._closed = False
        self._catch_up_lock: asyncio.Lock | None = None  # made on the loop, at the first catch-up

    @abc.abstractmethod
    def make_segmenter(self, config: ApplicationConfig, stream: LiveStream) -> S:
        """The segmenter of one publication."""

    def make_files(self, label: str) -> Files:
        """Where a new segmenter keeps its output (its own folder of files, or memory)."""
        return self.folder.files(label) if self.folder is not None else MemoryFiles()

    @abc.abstractmethod
    def segment_duration(self, config: ApplicationConfig) -> float:
        """The target duration of one segment (seconds): the default linger covers two windows."""

    @classmethod
    def for_control_plane(cls, registry: StreamRegistry, control: ControlPlane, **kwargs: object):
        """A packager that finds each stream's application with ``control.application_config(vhost, app)``."""

        async def lookup(key: StreamKey) -> ApplicationConfig | None:
            return await control.application_config(key.vhost, key.app)

        return cls(registry, lookup, **kwargs)  # type: ignore[arg-type]

    def attach(self) -> None:
        """Package every stream of the registry, from now on and those already live."""
        if self._attached:
            return
        self._attached = True
        self.registry.on_started(self._stream_started, mirrors=True)
        self.registry.on_ended(self._stream_ended, mirrors=True)
        for stream in self.registry.streams():
            self._stream_started(stream)

    def get(self, key: StreamKey) -> S | None:
        """The segmenter of a live (or recently ended) stream."""
        session = self._sessions.get(key)
        return session.segmenter if session is not None else None

    def keys(self) -> list[StreamKey]:
        return list(self._sessions)

    def watch(self, key: StreamKey) -> S | None:
        """`get`, for a request of a player: on demand, this starts (or keeps) the packaging of a
        live stream. The segmenter may not exist yet: `wait_ready` waits for it."""
        if self.on_demand and not self._closed:
            stream = self.registry.get(key)
            session = self._sessions.get(key)
            if stream is None and session is None:
                return None  # (nothing remembered for names that are not live: no growth on bad requests)
            self._watched_at[key] = asyncio.get_running_loop().time()
            if stream is not None and key not in self._paused and (session is None or session.stream is not stream):
                self._start_session(stream)
        return self.get(key)

    def add_timed_metadata(self, key: StreamKey, id3: bytes) -> bool:
        """Insert an ID3 tag into the output of a live stream (its next packet or part); on demand this
        starts its packaging, since its output now carries something. False if it is not packaged."""
        self.watch(key)
        session = self._sessions.get(key)
        if session is None or self.registry.get(key) is not session.stream:
            return False
        if session.segmenter is not None:
            session.segmenter.add_timed_metadata(id3)
        elif len(session.pending_events) < MAX_PENDING_EVENTS:
            session.pending_events.append(id3)
        return True

    def pause(self, key: StreamKey) -> bool:
        """Stop packaging ``key`` until `resume` or its next publish (WCS /hls/terminate): its
        playlist and segments are gone at once. False if the stream is not live here."""
        if self.registry.get(key) is None:
            return False
        self._paused.add(key)
        session = self._sessions.pop(key, None)
        if session is not None:
            self._stop(session)
        return True

    def resume(self, key: StreamKey) -> bool:
        """Package ``key`` again after `pause` (WCS /hls/startup). False if it is not live here."""
        stream = self.registry.get(key)
        if stream is None:
            return False
        if key in self._paused:
            self._paused.discard(key)
            self._stream_started(stream)
        return True

    async def wait_ready(self, key: StreamKey, timeout: float) -> S | None:
        """The segmenter of ``key`` once it has a playlist, waiting up to ``timeout`` s for it (a
        request of a player: see `watch`)."""
        self.watch(key)
        session = self._sessions.get(key)
        if session is None:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if session.segmenter is None:
            try:
                await asyncio.wait_for(session.configured.wait(), timeout)
            except TimeoutError:
                return None
        segmenter = session.segmenter
        if segmenter is None:
            return None
        # A first playlist lists the whole window the history gives, not what the catch-up has made so far.
        try:
            await asyncio.wait_for(session.caught_up.wait(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            pass
        await segmenter.wait_ready(max(0.0, deadline - loop.time()))
        return segmenter

    async def close(self) -> None:
        """Stop packaging (the registry keeps its listeners; they become no-ops)."""
        self._closed = True
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            self._stop(session)
        await asyncio.gather(*(s.task for s in sessions if s.task is not None), return_exceptions=True)

    # --- registry listeners ---------------------------------------------------------------------

    def _stop(self, session: _Session[S]) -> None:
        for handle in (session.drop_handle, session.idle_handle):
            if handle is not None:
                handle.cancel()
        session.subscription.close()
        if session.task is not None and not session.task.done():
            session.task.cancel()
        if session.segmenter is not None:
            session.segmenter.release()

    def _stream_started(self, stream: LiveStream) -> None:
        if self._closed or stream.key in self._paused:
            return
        if self.on_demand and not self._recently_watched(stream.key):
            # Nobody plays it (yet): the first request starts it. A publisher coming back while
            # players are still asking is packaged at once, as they expect.
            return
        self._start_session(stream)

    def _recently_watched(self, key: StreamKey) -> bool:
        watched_at = self._watched_at.get(key)
        return watched_at is not None and asyncio.get_running_loop().time() - watched_at < self.idle_timeout

    def _start_session(self, stream: LiveStream) -> None:
        old = self._sessions.get(stream.key)
        if old is not None:
            self._stop(old)
        # Subscribe at once (synchronously) so that no packet is missed while the config is looked up.
        session: _Session[S] = _Session(stream, stream.subscribe())
        if self.on_demand and self.history is not None:
            session.history_mark = self.history.mark(stream)
        self._sessions[stream.key] = session
        name = f"{self.label.lower()} {stream.key}"
        loop = asyncio.get_running_loop()
        session.task = loop.create_task(self._run(session), name=name)
        if self.on_demand:
            session.idle_handle = loop.call_later(self.idle_timeout, self._check_idle, session)

    def _check_idle(self, session: _Session[S]) -> None:
        """On demand: stop packaging a live stream nobody has asked for lately (one timer per
        packaged stream, not a sweep over all of them)."""
        session.idle_handle = None
        key = session.stream.key
        if self._sessions.get(key) is not session or session.stream.ended:
            return  # replaced, or ended (and then dropped after its linger)
        idle_timeout = self.idle_timeout
        if session.segmenter is not None and session.config is not None:
            idle_timeout = max(idle_timeout, IDLE_TIMEOUT_SEGMENTS * self.segment_duration(session.config))
        loop = asyncio.get_running_loop()
        idle_for = loop.time() - self._watched_at.get(key, float("-inf"))
        if idle_for < idle_timeout:
            session.idle_handle = loop.call_later(idle_timeout - idle_for, self._check_idle, session)
            return
        logger.info("%s: nobody watches %s: packaging stops", self.label, key)
        del self._sessions[key]
        self._watched_at.pop(key, None)
        self._stop(session)

    def _stream_ended(self, stream: LiveStream) -> None:
        self._paused.discard(stream.key)
        session = self._sessions.get(stream.key)
        if session is not None and session.stream is stream:
            session.ended.set()  # `_run` finishes the playlist

    async def _run(self, session: _Session[S]) -> None:
        stream = session.stream
        try:
            result = self.config_lookup(stream.key)
            config = await result if inspect.isawaitable(result) else result
        except Exception:
            logger.exception("%s: no application config for %s", self.label, stream.key)
            config = None
        if config is None:
            logger.info("%s: not packaging %s (no application)", self.label, stream.key)
            session.subscription.close()
            self._drop(session)
            session.configured.set()
            return
        segmenter = self.make_segmenter(config, stream)
        session.config = config
        session.segmenter = segmenter
        for id3 in session.pending_events:
            segmenter.add_timed_metadata(id3)
        session.pending_events.clear()
        session.configured.set()
        subscription = session.subscription
        try:
            # What came before (history, GOP) and during the lookup, then every packet inline: no queue
            # hand-off and no task switch per packet (the segmenter never blocks). No await between the
            # catch-up's last packet and the sink, so no packet is lost or reordered.
            # (in a function of its own: the packets it replays are freed when it returns, not held by
            # this coroutine's frame for as long as the stream is packaged)
            async with self._catch_up_turn():
                ended = await self._catch_up(session, segmenter, config)
                subscription.close()
                if not ended and not stream.ended:
                    stream.add_sink(segmenter.feed)
            session.caught_up.set()
            if not ended and not stream.ended:
                await session.ended.wait()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s packaging of %s failed", self.label, stream.key)
        finally:
            session.caught_up.set()
            stream.remove_sink(segmenter.feed)
            subscription.close()
            segmenter.finish()
        if not self._closed:
            linger = self.linger
            if linger is None:  # long enough for players that are a whole window behind
                linger = max(DEFAULT_LINGER, 2 * segmenter.window * self.segment_duration(config))
            session.drop_handle = asyncio.get_running_loop().call_later(linger, self._drop, session)

    def _catch_up_turn(self) -> asyncio.Lock:
        """One catch-up at a time in this packager, in the order asked (see `_catch_up`)."""
        if self._catch_up_lock is None:
            self._catch_up_lock = asyncio.Lock()
        return self._catch_up_lock

    async def _catch_up(self, session: _Session[S], segmenter: S, config: ApplicationConfig) -> bool:
        """Feed ``segmenter`` what came before it existed: the subscription's backlog, preceded on demand by
        the stream's history, then what the subscription got meanwhile. True if the stream ended meanwhile.

        A window of history is tenths of a second of packaging. Many streams asked for at once (players of
        100 streams starting together) made seconds of it back to back on the event loop, and every other
        request of the process (segments of streams already packaged) waited behind them, some past their
        players' timeouts. The history is now fed one piece (GOP) at a time with the loop's other work in
        between, and catch-ups take turns (`_catch_up_turn`): each still ends as early as before."""
        stream = session.stream
        subscription = session.subscription
        backlog = subscription.drain()
        replay = Replay()
        if session.history_mark and self.history is not None:
            seconds = segmenter.window * self.segment_duration(config)
            replay = self.history.replay(stream, seconds, session.history_mark)
        # Started on demand, the first packets (history, cached GOP) are older than now: the
        # segmenter dates its output (LL-HLS program date time) accordingly.
        dts = [packet.dts for packet in backlog if packet is not None and not packet.config]
        first = replay.first_dts if replay else dts[0] if dts else 0
        segmenter.backlog_ms = max(0, dts[-1] - first) if dts else 0
        # The configuration records the subscription starts with, the window's worth of history
        # (one piece at a time), then the GOP the subscription carries and what came since.
        configs = 0
        while configs < len(backlog) and backlog[configs] is not None and backlog[configs].config:
            segmenter.feed(backlog[configs])
            configs += 1
        for packets in replay:
            for packet in packets:
                segmenter.feed(packet)
            await asyncio.sleep(0)  # (the subscription keeps what arrives meanwhile)
        while backlog:
            for packet in backlog[configs:]:
                if packet is None:
                    return True
                segmenter.feed(packet)
            backlog, configs = subscription.drain(), 0
        return False

    def _drop(self, session: _Session[S]) -> None:
        if session.idle_handle is not None:
            session.idle_handle.cancel()
        if session.segmenter is not None:
            session.segmenter.release()
        if self._sessions.get(session.stream.key) is session:
            del self._sessions[session.stream.key]
            if self.registry.get(session.stream.key) is None:
                self._watched_at.pop(session.stream.key, None)
