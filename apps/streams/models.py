"""A live stream as the control plane knows it: one row per publish, updated by the engine node."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from apps.streams.choices import CONNECTION_KINDS, SourceType, StreamState


class StreamQuerySet(models.QuerySet):
    def live(self) -> StreamQuerySet:
        return self.filter(state=StreamState.LIVE)


class Stream(models.Model):
    application = models.ForeignKey("hosting.Application", on_delete=models.CASCADE, related_name="streams")
    node = models.ForeignKey(
        "engine.EngineNode", on_delete=models.SET_NULL, null=True, blank=True, related_name="streams"
    )
    name = models.CharField("name", max_length=255)
    media_session_id = models.UUIDField("media session id", default=uuid.uuid4, editable=False, db_index=True)
    state = models.CharField("state", max_length=10, choices=StreamState.choices, default=StreamState.LIVE)
    source_type = models.CharField("source type", max_length=20, choices=SourceType.choices)
    remote_address = models.CharField("publisher address", max_length=100, blank=True)
    input_tracks = models.JSONField("input tracks", default=list, blank=True)
    created_at = models.DateTimeField("created", default=timezone.now)
    ended_at = models.DateTimeField("ended", null=True, blank=True)
    # Traffic counters, written by the engine node every heartbeat.
    total_bytes_in = models.BigIntegerField("bytes in", default=0)
    total_bytes_out = models.BigIntegerField("bytes out", default=0)
    last_recv_time = models.DateTimeField("last received", null=True, blank=True)
    last_sent_time = models.DateTimeField("last sent", null=True, blank=True)
    connections = models.JSONField("connections", default=dict, blank=True, help_text="Viewers per protocol.")
    total_connections = models.PositiveIntegerField("viewers", default=0)
    hls_viewers = models.JSONField(
        "HLS viewers",
        default=list,
        blank=True,
        help_text="The engine's current HLS/LL-HLS viewer sessions: protocol, address, port, User-Agent, "
        "first and last request (Unix seconds); at most 1000.",
    )
    max_total_connections = models.PositiveIntegerField("most viewers", default=0)
    max_total_connection_time = models.DateTimeField("most viewers at", null=True, blank=True)
    last_throughput_in = models.BigIntegerField("last throughput in (bit/s)", default=0)
    last_throughput_out = models.BigIntegerField("last throughput out (bit/s)", default=0)
    max_throughput_in = models.BigIntegerField("max throughput in (bit/s)", default=0)
    max_throughput_out = models.BigIntegerField("max throughput out (bit/s)", default=0)
    hls_enabled = models.BooleanField(
        "HLS on", default=True, help_text="Off after WCS /hls/terminate, until /hls/startup or the next publish."
    )
    updated_at = models.DateTimeField("updated", auto_now=True)

    objects = StreamQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "name"],
                condition=models.Q(state=StreamState.LIVE),
                name="%(app_label)s_%(class)s_one_live_per_name",
            )
        ]

    def __str__(self) -> str:
        return f"{self.application.path}/{self.name}"

    @property
    def is_live(self) -> bool:
        return self.state == StreamState.LIVE

    @property
    def duration_seconds(self) -> float:
        end = self.ended_at or timezone.now()
        return max((end - self.created_at).total_seconds(), 0.0)

    def end(self) -> None:
        """The publisher is gone (or its node stopped heartbeating)."""
        if self.state == StreamState.ENDED:
            return
        self.state = StreamState.ENDED
        self.ended_at = timezone.now()
        self.connections = {}
        self.total_connections = 0
        self.hls_viewers = []
        self.save()

    def connection_counts(self) -> dict[str, int]:
        return {kind: int(self.connections.get(kind, 0)) for kind in CONNECTION_KINDS}

    @property
    def avg_throughput_in(self) -> int:
        seconds = self.duration_seconds
        return int(self.total_bytes_in * 8 / seconds) if seconds else 0

    @property
    def avg_throughput_out(self) -> int:
        seconds = self.duration_seconds
        return int(self.total_bytes_out * 8 / seconds) if seconds else 0
