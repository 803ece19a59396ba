"""Multiple streams recorders: the streams (media session ids) recorded together, and the files."""

from __future__ import annotations

from django.db import models

from apps.jobs.choices import ACTIVE_STATES
from apps.jobs.models import StreamJob


class MultiRecorder(StreamJob):
    """``stream_name`` holds the recorder's name (the uri without its scheme); it reads the live
    streams of ``members``, not one stream, so it needs no live stream to start."""

    needs_live_stream = False

    uri = models.CharField("uri", max_length=200, help_text="multi-recorder://NAME")
    members = models.JSONField(
        "members", default=list, blank=True, help_text="Media session ids of the recorded streams, in track order."
    )
    current_file = models.CharField("current file", max_length=1000, blank=True)

    class Meta(StreamJob.Meta):
        verbose_name = "multiple streams recorder"
        constraints = [
            models.UniqueConstraint(
                fields=["application", "uri"],
                condition=models.Q(state__in=ACTIVE_STATES),
                name="%(app_label)s_%(class)s_unique_active_uri",
            )
        ]

    def __str__(self) -> str:
        return self.uri

    @property
    def file_name(self) -> str:
        """WCS's file name: the uri with "://" replaced by "___", and ".mp4"."""
        return self.uri.replace("://", "___") + ".mp4"

    def add_member(self, media_session_id: str) -> None:
        self.members = [*self.members, media_session_id]
        self.save(update_fields=["members"])

    def remove_member(self, media_session_id: str) -> None:
        self.members = [member for member in self.members if member != media_session_id]
        self.save(update_fields=["members"])


class MultiRecorderFile(models.Model):
    recorder = models.ForeignKey(MultiRecorder, on_delete=models.CASCADE, related_name="files")
    sequence = models.PositiveIntegerField("sequence")
    path = models.CharField("path", max_length=1000)
    members = models.JSONField("members", default=list, help_text="Media session ids, in track order.")
    started_at = models.DateTimeField("started")
    finished_at = models.DateTimeField("finished", null=True, blank=True)
    bytes = models.BigIntegerField("bytes", default=0)
    duration_ms = models.BigIntegerField("duration (ms)", default=0)

    class Meta:
        ordering = ["recorder_id", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["recorder", "sequence"], name="%(app_label)s_%(class)s_unique_sequence")
        ]

    def __str__(self) -> str:
        return self.path
