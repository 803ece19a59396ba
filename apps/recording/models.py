"""Record tasks (OME's :startRecord) and the files each one wrote."""

from __future__ import annotations

from django.db import models

from apps.jobs.choices import ACTIVE_STATES
from apps.jobs.models import StreamJob
from apps.recording.choices import (
    DEFAULT_FILE_PATH,
    DEFAULT_INFO_PATH,
    RECORD_STATE_OF_JOB,
    RecordState,
    SegmentationRule,
)


class Record(StreamJob):
    record_id = models.CharField("id", max_length=200, help_text="The id given in :startRecord.")
    file_path = models.CharField("file path", max_length=500, default=DEFAULT_FILE_PATH)
    info_path = models.CharField("info path", max_length=500, default=DEFAULT_INFO_PATH)
    interval_ms = models.PositiveIntegerField("interval (ms)", null=True, blank=True)
    schedule = models.CharField("schedule", max_length=100, blank=True)
    segmentation_rule = models.CharField(
        "segmentation rule", max_length=20, choices=SegmentationRule.choices, default=SegmentationRule.DISCONTINUITY
    )
    metadata = models.TextField("metadata", blank=True)
    record_bytes = models.BigIntegerField("bytes of the current file", default=0)
    record_time_ms = models.BigIntegerField("time of the current file (ms)", default=0)
    total_record_bytes = models.BigIntegerField("total bytes", default=0)
    total_record_time_ms = models.BigIntegerField("total time (ms)", default=0)

    class Meta(StreamJob.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["application", "record_id"],
                condition=models.Q(state__in=ACTIVE_STATES),
                name="%(app_label)s_%(class)s_unique_active_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.record_id} ({self.application.path}/{self.stream_name})"

    def owned_files(self) -> list[str]:
        return [file.path for file in self.files.all()]

    @property
    def record_state(self) -> RecordState:
        """The state as OME shows it (``recording`` while it runs)."""
        return RECORD_STATE_OF_JOB[self.state]


class RecordFile(models.Model):
    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="files")
    sequence = models.PositiveIntegerField("sequence")
    path = models.CharField("path", max_length=1000)
    started_at = models.DateTimeField("started")
    finished_at = models.DateTimeField("finished", null=True, blank=True)
    bytes = models.BigIntegerField("bytes", default=0)
    duration_ms = models.BigIntegerField("duration (ms)", default=0)
    writer = models.CharField(
        "writer", max_length=32, blank=True, editable=False, help_text="The lease token of the worker that wrote it."
    )

    class Meta:
        ordering = ["record_id", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["record", "sequence"], name="%(app_label)s_%(class)s_unique_sequence")
        ]

    def __str__(self) -> str:
        return self.path
