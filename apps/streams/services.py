"""What happens to stream rows: a publish starts one, the engine's heartbeats update its counters,
its end (or its node's silence) ends it; every start and end is also an event on the Channels layer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from apps.engine.commands import send_stop
from apps.engine.models import EngineNode
from apps.hosting.models import Application
from apps.streams.choices import StreamState
from apps.streams.models import Stream
from apps.streams.signals import stream_went_live

logger = logging.getLogger(__name__)

# Every stream event goes to this group; /ws/events/ clients are members.
STREAM_EVENTS_GROUP = "stream-events"


@dataclass(frozen=True)
class CounterSnapshot:
    """A live stream's counters as the engine sees them at one heartbeat (times are Unix seconds)."""

    stream_id: int
    total_bytes_in: int
    total_bytes_out: int
    last_recv_time: float | None
    last_sent_time: float | None
    connections: dict[str, int]
    total_connections: int
    max_total_connections: int
    max_total_connection_time: float | None
    throughput_in: int
    throughput_out: int
    input_tracks: list[dict]
    # The engine's current HLS/LL-HLS viewer sessions (`media_engine.http.server.HttpViewer.as_dict`,
    # at most MAX_REPORTED_VIEWERS of them).
    hls_viewers: list[dict] = field(default_factory=list)


def _time(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def event_payload(event: str, stream: Stream) -> dict:
    return {
        "type": "stream.event",
        "event": event,
        "stream": {
            "id": stream.pk,
            "vhost": stream.application.virtual_host.name,
            "app": stream.application.name,
            "name": stream.name,
            "state": stream.state,
            "sourceType": stream.source_type,
            "node": stream.node.node_id if stream.node else None,
            "createdTime": stream.created_at.isoformat(),
            "endedTime": stream.ended_at.isoformat() if stream.ended_at else None,
        },
    }


def publish_event(event: str, stream: Stream, **extra) -> None:
    """Tell /ws/events/ listeners; a broken Channels layer never fails the stream itself."""
    try:
        async_to_sync(get_channel_layer().group_send)(STREAM_EVENTS_GROUP, {**event_payload(event, stream), **extra})
    except Exception:  # noqa: BLE001 - events are best effort, the row is the truth
        logger.exception("could not publish stream event %s for %s", event, stream)


def stream_started(
    application: Application,
    name: str,
    node: EngineNode | None,
    source_type: str,
    remote_address: str = "",
    input_tracks: list[dict] | None = None,
) -> Stream:
    """A stream went live: its row (with the input tracks the engine knows, so that nobody sees it
    without tracks), then the ``started`` event."""
    with transaction.atomic():
        # A row left live by a crashed node would block the unique constraint: end it first.
        for stale in Stream.objects.select_for_update().filter(application=application, name=name).live():
            stale.end()
        stream = Stream.objects.create(
            application=application,
            name=name,
            node=node,
            source_type=source_type,
            remote_address=remote_address,
            input_tracks=input_tracks or [],
        )
    publish_event("started", stream)
    # Each app's receiver (reserved records, pushes, transcodes...) runs on its own: one that raises
    # is logged (by Django) and neither stops the others nor fails the engine's report, which would
    # leave the engine without the row's id, so the row would never be ended.
    stream_went_live.send_robust(sender=Stream, stream=stream)
    return stream


def stream_ended(stream_id: int) -> Stream | None:
    stream = Stream.objects.select_related("application__virtual_host", "node").filter(pk=stream_id).first()
    if stream is None or not stream.is_live:
        return stream
    stream.end()
    publish_event("ended", stream)
    return stream


# CounterSnapshot attribute -> Stream field, for the counters stored as they come.
_COUNTER_FIELDS = {
    "total_bytes_in": "total_bytes_in",
    "total_bytes_out": "total_bytes_out",
    "last_recv_time": "last_recv_time",
    "last_sent_time": "last_sent_time",
    "connections": "connections",
    "total_connections": "total_connections",
    "max_total_connections": "max_total_connections",
    "max_total_connection_time": "max_total_connection_time",
    "throughput_in": "last_throughput_in",
    "throughput_out": "last_throughput_out",
    "input_tracks": "input_tracks",
    "hls_viewers": "hls_viewers",
}
_TIMES = {"last_recv_time", "last_sent_time", "max_total_connection_time"}


def _changed_fields(snapshot: CounterSnapshot, stored: CounterSnapshot | None) -> dict:
    """Stream field -> value to write for what differs from ``stored`` (everything if None). The
    ``max_throughput_*`` fields get the current throughput, which the statement compares with theirs."""
    fields = {}
    for name, field_name in _COUNTER_FIELDS.items():
        value = getattr(snapshot, name)
        if stored is not None and getattr(stored, name) == value:
            continue
        if name == "input_tracks" and not value:
            continue  # tracks not known (yet): the row keeps the ones it has
        fields[field_name] = _time(value) if name in _TIMES else value
    # The maximum throughput can only change when the current one does: compared in the statement, so
    # that it stays right whoever else reported for the stream in between.
    if "last_throughput_in" in fields:
        fields["max_throughput_in"] = snapshot.throughput_in
    if "last_throughput_out" in fields:
        fields["max_throughput_out"] = snapshot.throughput_out
    return fields


_MAXIMA = {"max_throughput_in", "max_throughput_out"}


def _counters_statement(names: list[str]) -> str:
    """One row's UPDATE of ``names``: each is set only if its flag parameter says it changed."""
    quote = connection.ops.quote_name
    greatest = "MAX" if connection.vendor == "sqlite" else "GREATEST"
    sets = []
    for name in names:
        column = quote(Stream._meta.get_field(name).column)
        value = f"{greatest}({column}, %s)" if name in _MAXIMA else "%s"
        sets.append(f"{column} = CASE WHEN %s THEN {value} ELSE {column} END")
    sets.append(f"{quote('updated_at')} = %s")
    where = f"{quote('id')} = %s AND {quote('state')} <> %s"
    return f"UPDATE {quote(Stream._meta.db_table)} SET {', '.join(sets)} WHERE {where}"


def record_counters(snapshots: Sequence[CounterSnapshot], stored: Mapping[int, CounterSnapshot] | None = None) -> int:
    """Store one heartbeat's counters of live streams; returns the number of rows updated.

    ``snapshots``: the counters as the engine sees them now, one per stream (``stream_id``).
    ``stored``: for each stream, the snapshot this caller stored last (pass what was passed in
    before, once that call returned); a field equal to it is not written again. Without it every
    field is written. Streams with nothing new are not touched; the others are updated by one
    statement run once per stream (`executemany`: no ORM expression per stream and field, which cost
    a worker holding many streams more than their media), never read. Rows of ended streams keep
    what they have (an ended row keeps its totals but has no audience: Stream.end() cleared it).
    """
    stored = stored or {}
    changes = {}
    for snapshot in snapshots:
        fields = _changed_fields(snapshot, stored.get(snapshot.stream_id))
        if fields:
            changes[snapshot.stream_id] = fields
    if not changes:
        return 0
    names = sorted({name for fields in changes.values() for name in fields})
    model_fields = [Stream._meta.get_field(name) for name in names]
    now = Stream._meta.get_field("updated_at").get_db_prep_save(timezone.now(), connection)
    rows = []
    for stream_id, fields in changes.items():
        row: list = []
        for name, model_field in zip(names, model_fields, strict=True):
            if name in fields:
                row += [True, model_field.get_db_prep_save(fields[name], connection)]
            else:
                row += [False, None]
        rows.append([*row, now, stream_id, StreamState.ENDED.value])
    with connection.cursor() as cursor:
        cursor.executemany(_counters_statement(names), rows)
        return max(cursor.rowcount, 0)


def end_streams_of_stale_nodes() -> int:
    """Nodes that stopped heartbeating lose their streams (they cannot be live anywhere)."""
    # Most of the time no node is silent: one look at the small node table, no join over the streams.
    stale = list(EngineNode.stale().values_list("pk", flat=True))
    if not stale:
        return 0
    ended = 0
    for stream in Stream.objects.live().filter(node__in=stale).select_related("application__virtual_host", "node"):
        stream.end()
        publish_event("ended", stream)
        ended += 1
    return ended


def request_stop(stream: Stream) -> None:
    """Ask the stream's engine node to disconnect its publisher; a dead node's stream just ends."""
    if not send_stop(stream):
        stream_ended(stream.pk)


def send_to_subscribers(stream: Stream, payload) -> None:
    """Deliver ``payload`` to everyone listening to stream events (event "data")."""
    async_to_sync(get_channel_layer().group_send)(
        STREAM_EVENTS_GROUP, {**event_payload("data", stream), "payload": payload}
    )
