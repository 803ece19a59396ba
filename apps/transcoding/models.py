"""Transcodes: one output profile applied to one live stream, with the renditions it publishes and
what it costs (CPU time of its worker threads); and WCS transcoders (one stream, one encoder)."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from apps.jobs.choices import ACTIVE_STATES, JobState
from apps.jobs.models import LeaseLost, StreamJob


class Transcode(StreamJob):
    """Runs while its stream is live; starts again (same row) when the stream comes back."""

    profile = models.ForeignKey(
        "hosting.OutputProfile", on_delete=models.CASCADE, related_name="transcodes", verbose_name="output profile"
    )
    output_stream_name = models.CharField("output stream", max_length=255, blank=True)
    renditions = models.JSONField(
        "renditions", default=list, blank=True, help_text="The renditions of the current run: name, stream, encodes."
    )
    rendition_streams = models.JSONField(
        "rendition streams", default=list, blank=True, help_text="Streams this transcode publishes into the engine."
    )
    skipped = models.JSONField("left out", default=list, blank=True, help_text="Parts of the profile not produced.")
    cpu_seconds = models.FloatField("CPU time (s)", default=0.0, help_text="CPU time of the current run.")
    cpu_percent = models.FloatField("CPU (% of a core)", default=0.0, help_text="Over the last second or so.")
    frames_decoded = models.BigIntegerField("frames decoded", default=0)
    frames_encoded = models.JSONField("frames encoded", default=dict, blank=True, help_text="Per rendition.")
    images_written = models.BigIntegerField("thumbnails written", default=0)

    class Meta(StreamJob.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["application", "stream_name", "profile"], name="%(app_label)s_%(class)s_one_per_stream_profile"
            )
        ]

    def __str__(self) -> str:
        return f"{self.application.path}/{self.stream_name} ({self.profile.name})"

    def start_run(self, plan_renditions: list[dict], streams: list[str], output_stream: str, skipped: list[str]):
        """A new run of the profile on the live stream: what it publishes, counters from zero."""
        self.renditions = plan_renditions
        self.rendition_streams = streams
        self.output_stream_name = output_stream
        self.skipped = skipped
        self.cpu_seconds = self.cpu_percent = 0.0
        self.frames_decoded = self.images_written = 0
        self.frames_encoded = {}
        # Only these fields, and only while this worker holds the job (a full save would undo a stop).
        fields = ["renditions", "rendition_streams", "output_stream_name", "skipped", "cpu_seconds", "cpu_percent",
                  "frames_decoded", "images_written", "frames_encoded"]  # fmt: skip
        if not self.held().update(**{name: getattr(self, name) for name in fields}):
            raise LeaseLost(str(self))

    def end_run(self) -> bool:
        """The run ended with its stream (the job waits, ready): stopped, not reserved; a transcode
        starts again only when its stream comes back (``services.start_transcodes``)."""
        return self._change([JobState.READY], state=JobState.STOPPED, finished_at=timezone.now(), cpu_percent=0.0)

    def record_progress(self, cpu_seconds: float, cpu_percent: float, decoded: int, encoded: dict, images: int):
        self.held().update(
            cpu_seconds=cpu_seconds,
            cpu_percent=cpu_percent,
            frames_decoded=decoded,
            frames_encoded=encoded,
            images_written=images,
        )


class WcsTranscoder(StreamJob):
    """A WCS transcoder (/transcoder/* and /transcoder2/*): ``stream_name`` (WCS's remoteStreamName)
    encoded with ``encoder`` into the stream ``local_stream_name``, with an optional watermark.
    It waits (reserved) while its input is not live, as the other media jobs do."""

    uri = models.CharField("URI", max_length=255, help_text="transcoder://name, unique among active transcoders.")
    api_version = models.PositiveSmallIntegerField("WCS API", default=1, help_text="1: /transcoder, 2: /transcoder2.")
    local_stream_name = models.CharField("output stream", max_length=255)
    encoder = models.JSONField("encoder", default=dict, blank=True, help_text="WCS's encoder object, as given.")
    watermark = models.JSONField(
        "watermark", default=dict, blank=True, help_text="File under the media root with x, y and margins."
    )
    media_session_id = models.UUIDField("media session id", default=uuid.uuid4, editable=False)
    output_node = models.ForeignKey(
        "engine.EngineNode",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Where the output is published (a CDN transcoder node); empty: the input's node.",
    )
    frames_encoded = models.BigIntegerField("frames encoded", default=0)

    class Meta(StreamJob.Meta):
        verbose_name = "WCS transcoder"
        constraints = [
            models.UniqueConstraint(
                fields=["uri"],
                condition=models.Q(state__in=ACTIVE_STATES),
                name="%(app_label)s_%(class)s_unique_active_uri",
            )
        ]

    def __str__(self) -> str:
        return f"{self.uri}: {self.stream_name} -> {self.local_stream_name}"

    def set_watermark(self, watermark: dict) -> None:
        """The running job picks it up within a second or so."""
        self.watermark = watermark
        self.save(update_fields=["watermark"])
