"""Push tasks (OME's :startPush): where a live stream is re-published, and how that is going."""

from __future__ import annotations

from django.db import models

from apps.jobs.choices import ACTIVE_STATES, JobState
from apps.jobs.models import StreamJob
from apps.push.choices import PushProtocol


class Push(StreamJob):
    push_id = models.CharField("id", max_length=200, help_text="The id given in :startPush.")
    protocol = models.CharField("protocol", max_length=10, choices=PushProtocol.choices)
    url = models.CharField("target URL", max_length=1000)
    stream_key = models.CharField("stream key", max_length=500, blank=True)
    sent_bytes = models.BigIntegerField("bytes sent (this connection)", default=0)
    sent_time_ms = models.BigIntegerField("time sent (this connection, ms)", default=0)
    total_sent_bytes = models.BigIntegerField("total bytes sent", default=0)
    total_sent_time_ms = models.BigIntegerField("total time sent (ms)", default=0)

    class Meta(StreamJob.Meta):
        verbose_name_plural = "pushes"
        constraints = [
            models.UniqueConstraint(
                fields=["application", "push_id"],
                condition=models.Q(state__in=ACTIVE_STATES),
                name="%(app_label)s_%(class)s_unique_active_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.push_id} ({self.application.path}/{self.stream_name} -> {self.protocol})"

    @property
    def target(self) -> str:
        """Where the media goes: OME appends the stream key to an RTMP URL."""
        if self.protocol == PushProtocol.RTMP and self.stream_key:
            return f"{self.url.rstrip('/')}/{self.stream_key}"
        return self.url

    def mark_connected(self, task_id: str = "") -> None:
        """Connected to the target (again): a reconnection starts the next sequence."""
        if self.state == JobState.STARTED:
            return
        if self.started_at is not None:
            self.sequence += 1
        self.sent_bytes = self.sent_time_ms = 0
        self.mark_started(task_id)
