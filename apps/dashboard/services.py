"""What the live dashboard shows: the current state (engine nodes, live streams and their numbers)
read in two queries, and the "stats" event each engine heartbeat sends to dashboards listening on
/ws/events/?stats=1 (built from the heartbeat's counters, no database read)."""

from __future__ import annotations

import logging
from datetime import datetime

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from apps.engine.models import EngineNode
from apps.streams.choices import StreamState
from apps.streams.consumers import STREAM_STATS_GROUP
from apps.streams.models import Stream
from apps.streams.services import CounterSnapshot

logger = logging.getLogger(__name__)


def viewers_by_protocol(connections: dict) -> dict[str, int]:
    """Only the protocols somebody watches with (the dashboard shows "hls 2, rtmp 1")."""
    return {kind: count for kind, count in sorted((connections or {}).items()) if isinstance(count, int) and count}


def snapshot_numbers(snapshot: CounterSnapshot) -> dict:
    return {
        "id": snapshot.stream_id,
        "viewers": snapshot.total_connections,
        "connections": viewers_by_protocol(snapshot.connections),
        "bitrateIn": snapshot.throughput_in,
        "bitrateOut": snapshot.throughput_out,
        "bytesIn": snapshot.total_bytes_in,
        "bytesOut": snapshot.total_bytes_out,
    }


def stream_state(stream: Stream) -> dict:
    return {
        "id": stream.pk,
        "vhost": stream.application.virtual_host.name,
        "app": stream.application.name,
        "name": stream.name,
        "node": stream.node.node_id if stream.node else None,
        "sourceType": stream.source_type,
        "createdTime": stream.created_at.isoformat(),
        "viewers": stream.total_connections,
        "connections": viewers_by_protocol(stream.connections),
        "bitrateIn": stream.last_throughput_in,
        "bitrateOut": stream.last_throughput_out,
        "bytesIn": stream.total_bytes_in,
        "bytesOut": stream.total_bytes_out,
        "playUrl": reverse("stream-play", args=[stream.pk]),
    }


def node_state(node: EngineNode, live_streams: int) -> dict:
    return {
        "nodeId": node.node_id,
        "address": node.address,
        "rtmpPort": node.rtmp_port,
        "mediaHttpPort": node.media_http_port,
        "startedTime": node.started_at.isoformat(),
        "lastHeartbeat": node.last_heartbeat.isoformat(),
        "alive": node.is_alive,
        "liveStreams": live_streams,
    }


def dashboard_state() -> dict:
    """Everything the dashboard draws, in two queries however many streams are live."""
    nodes = EngineNode.objects.annotate(live=Count("streams", filter=Q(streams__state=StreamState.LIVE)))
    streams = Stream.objects.live().select_related("application__virtual_host", "node").order_by("created_at")
    return {
        "time": timezone.now().isoformat(),
        "nodeTimeout": settings.ENGINE_NODE_TIMEOUT,
        "nodes": [node_state(node, node.live) for node in nodes],
        "streams": [stream_state(stream) for stream in streams],
    }


def stats_message(node_id: str, snapshots: list[CounterSnapshot], now: datetime | None = None) -> dict:
    """The Channels message of one heartbeat; /ws/events/?stats=1 sockets send it on as {"event": "stats"}."""
    return {
        "type": "stream.stats",
        "node": node_id,
        "time": (now or timezone.now()).isoformat(),
        "streams": [snapshot_numbers(snapshot) for snapshot in snapshots],
    }


def publish_stream_stats(node_id: str, snapshots: list[CounterSnapshot]) -> None:
    """One group message per heartbeat (cheap when no dashboard listens); best effort, like stream events."""
    try:
        async_to_sync(get_channel_layer().group_send)(STREAM_STATS_GROUP, stats_message(node_id, snapshots))
    except Exception:  # noqa: BLE001 - a dashboard update never disturbs the engine's heartbeat
        logger.exception("could not publish stream stats of node %s", node_id)
