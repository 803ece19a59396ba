"""The engine's control plane over the database: application lookups (cached briefly, since every
RTMP connect and HLS request asks) and stream start/end as rows and events.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Sequence

from asgiref.sync import sync_to_async
from django.conf import settings

from apps.access.services import access_rules
from apps.engine.choices import NodeRole
from apps.engine.claims import PublishClaims
from apps.engine.models import EngineNode, internal_job_secret
from apps.hosting.models import Application
from apps.hosting.services import find_virtual_host
from apps.pull.services import active_pull_of
from apps.streams import services as stream_services
from apps.streams.choices import SourceType
from apps.streams.models import Stream
from apps.transcoding.services import playlist_variants
from media_engine.control import ApplicationConfig
from media_engine.hls.master import PlaylistVariant
from media_engine.http.server import HttpViewer
from media_engine.registry import LiveStream, StreamKey
from media_engine.relay.mirror import RemoteSource

# How long an application lookup is reused; API changes reach the engine within this time.
CONFIG_CACHE_SECONDS = 2.0
SOURCE_TYPES = {
    "rtmp": SourceType.RTMP,
    "webrtc": SourceType.WEBRTC,
    "srt": SourceType.SRT,
    "mpegts": SourceType.MPEGTS,
}


def _setting(publisher: dict, name: str, default, kind, minimum, maximum=None):
    """One numeric publisher setting as OME names it; a missing or unusable value falls back to the
    default (the API refuses such values; a row stored before it did must not stop the application)."""
    raw = publisher.get(name, default)
    if isinstance(raw, bool):
        return default
    try:
        value = kind(raw)
    except (TypeError, ValueError, OverflowError):
        return default
    if value != value or value < minimum or (maximum is not None and value > maximum):  # NaN, out of range
        return default
    return value


def application_config(application: Application) -> ApplicationConfig:
    hls = application.publishers.get("hls") or {}
    # OME's LLHLS publisher: <ChunkDuration> (the part target), <SegmentDuration>, <SegmentCount>.
    llhls = application.publishers.get("llhls") or {}
    defaults = ApplicationConfig(vhost="", app="")
    return ApplicationConfig(
        vhost=application.virtual_host.name,
        app=application.name,
        hls_segment_duration=_setting(hls, "segmentDuration", 4.0, float, 1.0, 60.0),
        hls_segment_count=_setting(hls, "segmentCount", 5, int, 1, 100),
        llhls_part_duration=_setting(llhls, "chunkDuration", defaults.llhls_part_duration, float, 0.1, 10.0),
        llhls_segment_duration=_setting(llhls, "segmentDuration", defaults.llhls_segment_duration, float, 1.0, 60.0),
        llhls_segment_count=_setting(llhls, "segmentCount", defaults.llhls_segment_count, int, 1, 100),
        # Media jobs of the platform get in with an internal job token (media_engine.internal_auth).
        access=dataclasses.replace(
            access_rules(application), job_secret=internal_job_secret(), publish_refused=publish_refused()
        ),
    )


def publish_refused() -> str:
    """Why this node refuses publishers ("": it takes them): an edge plays the cluster's streams only."""
    if settings.ENGINE_NODE_ROLE == NodeRole.EDGE:
        return "this node is an edge: publish to an origin"
    return ""


def snapshot_of(
    stream_id: int,
    stream: LiveStream,
    interval: float,
    previous: tuple[int, int] | None = None,
    viewers: Sequence[HttpViewer] = (),
):
    """The stream's counters for a heartbeat, with its current HLS/LL-HLS ``viewers``."""
    counters = stream.counters
    throughput_in = throughput_out = 0
    if previous is not None and interval > 0:
        throughput_in = int((counters.total_bytes_in - previous[0]) * 8 / interval)
        throughput_out = int((counters.total_bytes_out - previous[1]) * 8 / interval)
    return stream_services.CounterSnapshot(
        stream_id=stream_id,
        total_bytes_in=counters.total_bytes_in,
        total_bytes_out=counters.total_bytes_out,
        last_recv_time=counters.last_recv_time,
        last_sent_time=counters.last_sent_time,
        connections=dict(counters.connections),
        total_connections=counters.total_connections,
        max_total_connections=counters.max_total_connections,
        max_total_connection_time=counters.max_total_connection_time,
        throughput_in=max(throughput_in, 0),
        throughput_out=max(throughput_out, 0),
        input_tracks=[track.as_dict() for track in stream.tracks()],
        hls_viewers=[viewer.as_dict() for viewer in viewers],
    )


def mirroring_worker(key: StreamKey, workers: Sequence[str]) -> str:
    """The worker (node id) of an edge that pulls ``key`` for its siblings: the highest rank of
    ``key`` and the worker (rendezvous hashing: the same on every worker that sees the same alive
    workers, and a worker that dies or comes back moves only its own share of the keys)."""

    def rank(worker: str) -> bytes:
        return hashlib.sha256("\x00".join((worker, *key)).encode()).digest()

    return max(workers, key=rank)


class DatabaseControlPlane:
    def __init__(self, node: EngineNode, clock=time.monotonic, *, siblings_of: str | None = None) -> None:
        """``siblings_of``: this node is worker process ``<siblings_of>.<i>`` of `runengine --processes`;
        `locate` then finds the streams its siblings (``<siblings_of>.<j>``) hold."""
        self.node = node
        self.clock = clock
        self.siblings_of = siblings_of
        # RTMP publishes (media_engine.rtmp.session) claim their key here before they open the stream.
        self.claims = PublishClaims(node)
        self.stream_ids: dict[StreamKey, int] = {}
        self._cache: dict[tuple, tuple[float, ApplicationConfig | None]] = {}

    def _cached(self, key: tuple, load):
        now = self.clock()
        hit = self._cache.get(key)
        if hit and now - hit[0] < CONFIG_CACHE_SECONDS:
            return hit[1]
        value = load()
        self._cache[key] = (now, value)
        return value

    def _resolve(self, host: str, app: str) -> ApplicationConfig | None:
        vhost = find_virtual_host(host)
        if vhost is None:
            return None
        application = vhost.applications.select_related("virtual_host").filter(name=app).first()
        return application_config(application) if application else None

    def _by_name(self, vhost: str, app: str) -> ApplicationConfig | None:
        application = (
            Application.objects.select_related("virtual_host").filter(virtual_host__name=vhost, name=app).first()
        )
        return application_config(application) if application else None

    async def resolve_application(self, host: str, app: str) -> ApplicationConfig | None:
        return await sync_to_async(self._cached)(("host", host, app), lambda: self._resolve(host, app))

    async def application_config(self, vhost: str, app: str) -> ApplicationConfig | None:
        return await sync_to_async(self._cached)(("name", vhost, app), lambda: self._by_name(vhost, app))

    def _playlist(self, vhost: str, app: str, stream: str, file_name: str) -> list[PlaylistVariant] | None:
        application = Application.objects.filter(virtual_host__name=vhost, name=app).first()
        variants = playlist_variants(application, stream, file_name) if application is not None else None
        return None if variants is None else [PlaylistVariant(name, bandwidth) for name, bandwidth in variants]

    async def output_playlist(self, vhost: str, app: str, stream: str, file_name: str) -> list[PlaylistVariant] | None:
        """The renditions of an output profile's playlist (`media_engine.hls.master.PlaylistLookup`)."""
        key = ("playlist", vhost, app, stream, file_name)
        return await sync_to_async(self._cached)(key, lambda: self._playlist(vhost, app, stream, file_name))

    def _started(self, stream: LiveStream) -> int | None:
        application = Application.objects.filter(virtual_host__name=stream.key.vhost, name=stream.key.app).first()
        if application is None:  # deleted while the publisher was connecting
            return None
        # A pull's publish shows the pull's source type from the first moment the row is visible.
        pull = active_pull_of(application, stream.key.name)
        source = pull.source_type if pull is not None else SOURCE_TYPES.get(stream.source, SourceType.RTMP)
        tracks = [track.as_dict() for track in stream.tracks()]
        row = stream_services.stream_started(
            application, stream.key.name, self.node, source, stream.remote_address, input_tracks=tracks
        )
        return row.pk

    async def stream_started(self, stream: LiveStream) -> None:
        stream_id = await sync_to_async(self._started)(stream)
        if stream_id is not None:
            self.stream_ids[stream.key] = stream_id
        # The publisher may already be gone by the time the row exists.
        if stream.ended:
            await self.stream_ended(stream)

    async def stream_ended(self, stream: LiveStream) -> None:
        stream_id = self.stream_ids.get(stream.key)
        if stream_id is None:
            return
        await sync_to_async(stream_services.record_counters)([snapshot_of(stream_id, stream, 0.0)])
        await sync_to_async(stream_services.stream_ended)(stream_id)
        if self.stream_ids.get(stream.key) == stream_id:
            del self.stream_ids[stream.key]

    # --- worker processes behind one port (runengine --processes) ------------------------------------

    def _is_sibling(self, node: EngineNode) -> bool:
        return self.siblings_of is not None and node.node_id.startswith(f"{self.siblings_of}.")

    def _holding_sibling(self, key: StreamKey) -> EngineNode | None:
        """The alive sibling whose live stream row is ``key`` (None: none, or this node holds it)."""
        if self.siblings_of is None:
            return None
        stream = (
            Stream.objects.live()
            .filter(application__virtual_host__name=key.vhost, application__name=key.app, name=key.name)
            .exclude(node=self.node)
            .select_related("node")
            .first()
        )
        node = stream.node if stream is not None else None
        return node if node is not None and node.is_alive and self._is_sibling(node) else None

    def _mirroring_sibling(self, key: StreamKey) -> EngineNode | None:
        """On an edge run as several workers: the sibling that pulls ``key`` from the cluster for all
        of them (None: this worker). Each alive worker ranks the keys the same way (rendezvous
        hashing, `mirroring_worker`), so one pull per edge needs no lock and no row: the others mirror
        or proxy from the chosen one, which pulls on its first viewer, here or on a sibling."""
        if self.siblings_of is None or settings.ENGINE_NODE_ROLE != NodeRole.EDGE:
            return None
        siblings = [
            node
            for node in EngineNode.objects.filter(node_id__startswith=f"{self.siblings_of}.").exclude(pk=self.node.pk)
            if node.is_alive and self._is_sibling(node)
        ]
        chosen = mirroring_worker(key, [self.node.node_id, *(node.node_id for node in siblings)])
        return next((node for node in siblings if node.node_id == chosen), None)

    def _holder(self, key: StreamKey) -> RemoteSource | None:
        node = self._holding_sibling(key) or self._mirroring_sibling(key)
        if node is None:
            return None
        return RemoteSource(
            url=node.rtmp_url(key.app, key.name, vhost=key.vhost),
            origin=node.node_id,
            http_base=f"http://{node.address}:{node.media_http_port}",
        )

    async def locate(self, key: StreamKey) -> RemoteSource | None:
        """Where the sibling worker holding ``key`` is reached (`relay.mirror.Locate`): the one it is
        published to, or on an edge the one that pulls it from the cluster; None: this worker, or no
        sibling has it."""
        return await sync_to_async(self._holder)(key)

    def _worker_base(self, tag: str) -> str | None:
        if self.siblings_of is None or not tag.isdigit():
            return None
        node = EngineNode.objects.filter(node_id=f"{self.siblings_of}.{tag}").first()
        return f"http://{node.address}:{node.media_http_port}" if node is not None and node.is_alive else None

    async def locate_worker(self, tag: str) -> str | None:
        """The private media HTTP base of sibling worker ``tag`` (WebRTC session ids name it)."""
        return await sync_to_async(self._worker_base)(tag)

    # --- publish claims (apps.engine.claims) -------------------------------------------------------

    async def claim_publish(self, key: StreamKey) -> bool:
        """False while another alive node (a sibling worker process too) holds or is taking a publish of
        ``key``; True: this node may open it, and `release_publish` follows once the session is done."""
        return await self.claims.claim(key)

    def release_publish(self, key: StreamKey) -> None:
        self.claims.release(key)
