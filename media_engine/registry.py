"""Live stream registry: which streams are live on this node, and the fan-out of each one's packets.

A publisher pushes packets into its `LiveStream`; every subscriber (RTMP player, HLS
packager, recorder...) reads them from its own bounded queue. A subscriber that falls
behind is dropped, so a slow reader never slows the publisher or the other readers.

A stream is *opened* when its publisher claims the name, and *started* (visible: the
registry's ``on_started`` listeners, its `streams` list) only once its tracks are known, as
OME does: every track the publisher announced (RTMP/SRT ``onMetaData``, a WebRTC offer, see
`LiveStream.announce`) has its codec configuration, or, with nothing announced, both kinds
have one. A track that never comes is waited for a bounded stretch of media time (see
`READY_WAIT_ANNOUNCED_MS`, `READY_WAIT_UNANNOUNCED_MS`), so an audio-only source still starts.
A publisher that never sends media never becomes a stream.

A *mirror* is a stream this node plays from another node that holds it (`media_engine.relay.mirror`):
its ``origin`` is that node's id (None for streams published here). Local readers use it like any
stream, but listeners hear of mirrors only if they ask to (``mirrors=True``: packagers, WebRTC), so
the control plane never records a mirror as a stream of this node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from media_engine.names import check_stream_name
from media_engine.packets import MediaPacket, TrackKind
from media_engine.tracks import TrackInfo, TrackMeter, describe_audio, describe_video

logger = logging.getLogger(__name__)

# Packets kept since the last video keyframe, so a new player starts on a keyframe at once.
# Bounded so that a stream with no keyframes cannot grow memory without limit.
GOP_CACHE_MAX_PACKETS = 4096

# How long (media time since the first media packet) a stream waits for a track that its publisher
# announced but has not configured yet, and, when nothing was announced, for the other kind of track
# (so that an audio-only or video-only source still starts, a little later).
READY_WAIT_ANNOUNCED_MS = 5000
READY_WAIT_UNANNOUNCED_MS = 1500
# The same bound in packets, for publishers whose timestamps do not advance.
READY_WAIT_MAX_PACKETS = 1000


PacketSink = Callable[[MediaPacket], None]


class StreamKey(NamedTuple):
    vhost: str
    app: str
    name: str

    def __str__(self) -> str:
        return f"{self.vhost}/{self.app}/{self.name}"


class StreamAlreadyLive(Exception):
    """A publisher asked for a stream name that is already being published."""


@dataclass
class TrafficCounters:
    """Byte and connection counters of one stream, as the OME stats API reports them."""

    created_time: float = field(default_factory=time.time)
    total_bytes_in: int = 0
    total_bytes_out: int = 0
    last_recv_time: float | None = None
    last_sent_time: float | None = None
    connections: dict[str, int] = field(default_factory=dict)
    total_connections: int = 0
    max_total_connections: int = 0
    max_total_connection_time: float | None = None

    def received(self, nbytes: int) -> None:
        self.total_bytes_in += nbytes
        self.last_recv_time = time.time()

    def sent(self, nbytes: int) -> None:
        self.total_bytes_out += nbytes
        self.last_sent_time = time.time()

    def connection_opened(self, protocol: str) -> None:
        self.connections[protocol] = self.connections.get(protocol, 0) + 1
        self.total_connections += 1
        if self.total_connections > self.max_total_connections:
            self.max_total_connections = self.total_connections
            self.max_total_connection_time = time.time()

    def connection_closed(self, protocol: str) -> None:
        self.connections[protocol] = max(0, self.connections.get(protocol, 0) - 1)
        self.total_connections = max(0, self.total_connections - 1)


class Subscription:
    """One reader's bounded queue of a live stream's packets. ``None`` marks the end."""

    def __init__(self, stream: LiveStream, maxsize: int) -> None:
        self.stream = stream
        self._queue: asyncio.Queue[MediaPacket | None] = asyncio.Queue(maxsize)
        self.overflowed = False
        self.closed = False

    def offer(self, packet: MediaPacket | None) -> bool:
        """Queue a packet without waiting; False (and the subscription ends) if the reader is too slow."""
        if self.closed:
            return False
        try:
            self._queue.put_nowait(packet)
        except asyncio.QueueFull:
            self.overflowed = True
            self._finish()
            return False
        if packet is None:
            self.closed = True
        return True

    def _finish(self) -> None:
        self.closed = True
        # Make room for the end marker so the reader wakes up and sees the end.
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def get(self) -> MediaPacket | None:
        return await self._queue.get()

    def drain(self) -> list[MediaPacket | None]:
        """Everything queued right now, without waiting."""
        packets = []
        while not self._queue.empty():
            packets.append(self._queue.get_nowait())
        return packets

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> MediaPacket:
        packet = await self._queue.get()
        if packet is None:
            raise StopAsyncIteration
        return packet

    def close(self) -> None:
        """The reader leaves: stop receiving packets."""
        self.stream.unsubscribe(self)
        self.closed = True


class LiveStream:
    """One live stream on this node: its codec configuration, GOP cache, counters and readers."""

    def __init__(
        self,
        key: StreamKey,
        source: str,
        remote_address: str = "",
        on_ready: Callable[[LiveStream], None] | None = None,
        origin: str | None = None,
    ) -> None:
        """``on_ready(stream)`` is called once, when the stream's tracks are known; ``origin`` is the
        node a mirror plays the stream from (None: published here)."""
        self.key = key
        self.source = source
        self.remote_address = remote_address
        self.origin = origin
        self.counters = TrafficCounters()
        self.metadata: MediaPacket | None = None
        self.video_config: MediaPacket | None = None
        self.audio_config: MediaPacket | None = None
        self.gop: list[MediaPacket] = []
        self.ended = False
        self.video_meter = TrackMeter()
        self.audio_meter = TrackMeter()
        self._subscriptions: set[Subscription] = set()
        self._sinks: list[PacketSink] = []
        self._passive_sinks: list[PacketSink] = []  # sinks that do not keep a mirror alive
        self._on_stop: Callable[[], None] | None = None
        # readiness (see the module docstring)
        self.ready = False
        self.expected: frozenset[TrackKind] | None = None
        self._first_media_dts: int | None = None
        self._media_packets = 0
        self._on_ready = on_ready

    @property
    def has_video(self) -> bool:
        return self.video_config is not None

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    @property
    def reader_count(self) -> int:
        """Readers that want the stream: subscriptions and sinks but the passive ones (the HLS history
        keeps every stream's last seconds; it alone does not keep a mirror playing)."""
        return len(self._subscriptions) + len(self._sinks) - len(self._passive_sinks)

    def set_stop_handler(self, handler: Callable[[], None]) -> None:
        """How to disconnect this stream's publisher when the API deletes the stream."""
        self._on_stop = handler

    def stop(self) -> None:
        """Disconnect the publisher (e.g. on DELETE from the API)."""
        if self._on_stop is not None:
            self._on_stop()

    def announce(self, *, video: bool, audio: bool) -> None:
        """The publisher said which tracks it sends (RTMP ``onMetaData``, a WebRTC offer...): the
        stream starts once each of them is configured. Announcing neither kind says nothing."""
        if self.ready:
            return
        kinds = {kind for kind, sent in ((TrackKind.VIDEO, video), (TrackKind.AUDIO, audio)) if sent}
        self.expected = frozenset(kinds) if kinds else None

    def _tracks_known(self, packet: MediaPacket) -> bool:
        """After ``packet``: are the stream's tracks known (see the module docstring)?"""
        if not packet.config and packet.kind is not TrackKind.DATA:
            if self._first_media_dts is None:
                self._first_media_dts = packet.dts
            self._media_packets += 1
        configured = set()
        if self.video_config is not None:
            configured.add(TrackKind.VIDEO)
        if self.audio_config is not None:
            configured.add(TrackKind.AUDIO)
        if not configured:
            return False
        if self.expected is not None:
            if self.expected <= configured:
                return True
            wait_ms = READY_WAIT_ANNOUNCED_MS
        else:
            if len(configured) == 2:
                return True
            wait_ms = READY_WAIT_UNANNOUNCED_MS
        first = self._first_media_dts
        if first is None:
            return False
        return packet.dts - first >= wait_ms or self._media_packets >= READY_WAIT_MAX_PACKETS

    def tracks(self) -> list[TrackInfo]:
        """The input tracks as measured so far (video first, as OME lists them)."""
        found = [
            describe_video(self.video_config, self.video_meter, 0),
            describe_audio(self.audio_config, self.audio_meter, 1 if self.video_config else 0),
        ]
        return [track for track in found if track is not None]

    def push(self, packet: MediaPacket) -> None:
        """Take one packet from the publisher and hand it to every reader."""
        if not packet.config:
            if packet.kind is TrackKind.VIDEO:
                self.video_meter.observe(packet)
            elif packet.kind is TrackKind.AUDIO:
                self.audio_meter.observe(packet)
        if packet.config:
            if packet.kind is TrackKind.VIDEO:
                self.video_config = packet
            elif packet.kind is TrackKind.AUDIO:
                self.audio_config = packet
            else:
                self.metadata = packet
        elif packet.kind is TrackKind.VIDEO and packet.keyframe:
            self.gop = [packet]
        elif self.gop and len(self.gop) < GOP_CACHE_MAX_PACKETS:
            self.gop.append(packet)
        for sink in self._sinks:
            try:
                sink(packet)
            except Exception:
                logger.exception("packet sink of %s failed; removing it", self.key)
                self._sinks = [other for other in self._sinks if other is not sink]
        for subscription in list(self._subscriptions):
            if not subscription.offer(packet):
                logger.info("dropping slow reader of %s", self.key)
                self._subscriptions.discard(subscription)
        # Last, so that readers joining at the start get this packet once (from the caches).
        if not self.ready and self._tracks_known(packet):
            self.ready = True
            if self._on_ready is not None:
                self._on_ready(self)

    def add_sink(self, sink: PacketSink, *, passive: bool = False) -> None:
        """A reader called inline for every packet: for fast, non-blocking consumers (the HLS
        packager) that would otherwise pay a queue hand-off and a task switch per packet. A
        ``passive`` sink is not counted in `reader_count`."""
        self._sinks = [*self._sinks, sink]
        if passive:
            self._passive_sinks = [*self._passive_sinks, sink]

    def remove_sink(self, sink: PacketSink) -> None:
        # == rather than `is`: each access to a bound method makes a new (equal) object.
        self._sinks = [other for other in self._sinks if other != sink]
        self._passive_sinks = [other for other in self._passive_sinks if other != sink]

    def subscribe(self, maxsize: int = 2048, from_keyframe: bool = True) -> Subscription:
        """A new reader: it first gets the codec configuration and (optionally) the cached GOP."""
        subscription = Subscription(self, max(maxsize, len(self.gop) + 8))
        if self.ended:
            subscription.offer(None)
            return subscription
        for config in (self.metadata, self.video_config, self.audio_config):
            if config is not None:
                subscription.offer(config)
        if from_keyframe:
            for packet in self.gop:
                subscription.offer(packet)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def end(self) -> None:
        """The publisher is gone: every reader gets the end marker."""
        self.ended = True
        self._sinks = []
        self._passive_sinks = []
        for subscription in list(self._subscriptions):
            subscription.offer(None)
        self._subscriptions.clear()


StreamListener = Callable[[LiveStream], None]


class StreamRegistry:
    """All live streams of this node, by (vhost, app, stream name)."""

    def __init__(self) -> None:
        self._streams: dict[StreamKey, LiveStream] = {}
        self._on_started: list[tuple[StreamListener, bool]] = []
        self._on_ended: list[tuple[StreamListener, bool]] = []

    def on_started(self, listener: StreamListener, *, mirrors: bool = False) -> None:
        """Call ``listener`` when a stream starts; for mirrors too only if ``mirrors``."""
        self._on_started.append((listener, mirrors))

    def on_ended(self, listener: StreamListener, *, mirrors: bool = False) -> None:
        """Call ``listener`` when a started stream ends; for mirrors too only if ``mirrors``."""
        self._on_ended.append((listener, mirrors))

    def open(self, key: StreamKey, source: str, remote_address: str = "", *, origin: str | None = None) -> LiveStream:
        """Register a new publisher (or, with ``origin``, a mirror of a stream that node holds); refuse
        a name that is already live, mirrored or being opened (StreamAlreadyLive) or that breaks the
        stream name rule (InvalidStreamName: every protocol's entry checks it first). The
        ``on_started`` listeners hear of it once its tracks are known."""
        check_stream_name(key.name)
        if key in self._streams:
            raise StreamAlreadyLive(str(key))
        stream = LiveStream(key, source, remote_address, on_ready=self._started, origin=origin)
        self._streams[key] = stream
        if origin is None:
            logger.info("stream %s opened (%s from %s)", key, source, remote_address)
        else:
            logger.info("stream %s opened as a mirror of node %s", key, origin)
        return stream

    def _started(self, stream: LiveStream) -> None:
        if self._streams.get(stream.key) is not stream:
            return
        tracks = ", ".join(f"{track.kind} {track.codec}" for track in stream.tracks())
        logger.info("stream %s started (%s from %s): %s", stream.key, stream.source, stream.remote_address, tracks)
        for listener, mirrors in self._on_started:
            if mirrors or stream.origin is None:
                listener(stream)

    def close(self, stream: LiveStream) -> None:
        """The publisher of ``stream`` is gone (``on_ended`` listeners hear of it if it had started)."""
        if self._streams.get(stream.key) is stream:
            del self._streams[stream.key]
        if stream.ended:
            return
        stream.end()
        if not stream.ready:
            logger.info("stream %s closed before its tracks were known", stream.key)
            return
        logger.info("stream %s ended", stream.key)
        for listener, mirrors in self._on_ended:
            if mirrors or stream.origin is None:
                listener(stream)

    def get(self, key: StreamKey) -> LiveStream | None:
        """The stream published under ``key``, started or still waiting for its tracks."""
        return self._streams.get(key)

    def streams(self) -> list[LiveStream]:
        """The started streams."""
        return [stream for stream in self._streams.values() if stream.ready]
