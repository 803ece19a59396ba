"""Mixers (WCS /mixer/*): the output stream, its layout and pictures, and the streams mixed into it."""

from __future__ import annotations

import uuid

from django.db import models

from apps.jobs.choices import ACTIVE_STATES
from apps.jobs.models import StreamJob
from apps.mixing.choices import Layout

DEFAULT_PARAMETERS = {"mixerVideoWidth": 1280, "mixerVideoHeight": 720, "mixerVideoFps": 30}


class Mixer(StreamJob):
    """``stream_name`` is the output stream (WCS's localStreamName), published by the mixer: it
    needs no live stream to start. Inputs come and go while it runs."""

    needs_live_stream = False
    needs_engine_node = True

    uri = models.CharField("URI", max_length=255, help_text="mixer://name, unique among active mixers.")
    has_video = models.BooleanField("video", default=True)
    has_audio = models.BooleanField("audio", default=True)
    layout = models.CharField("layout", max_length=20, choices=Layout.choices, default=Layout.GRID)
    background = models.CharField("background", max_length=1000, blank=True, help_text="Picture under the media root.")
    watermark = models.JSONField("watermark", default=dict, blank=True, help_text="Over the whole output picture.")
    parameters = models.JSONField(
        "parameters", default=dict, blank=True, help_text="mixerVideoWidth, mixerVideoHeight, mixerVideoFps..."
    )
    media_session_id = models.UUIDField("media session id", default=uuid.uuid4, editable=False)
    video_frames = models.BigIntegerField("video frames", default=0)
    audio_frames = models.BigIntegerField("audio frames", default=0)
    inputs_live = models.PositiveIntegerField("inputs read", default=0)

    class Meta(StreamJob.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["uri"], condition=models.Q(state__in=ACTIVE_STATES), name="%(app_label)s_%(class)s_unique_uri"
            )
        ]

    def __str__(self) -> str:
        return f"{self.uri} -> {self.stream_name}"

    def parameter(self, name: str):
        return self.parameters.get(name, DEFAULT_PARAMETERS.get(name))

    def record_progress(self, video_frames: int, audio_frames: int, inputs_live: int) -> None:
        self.held().update(video_frames=video_frames, audio_frames=audio_frames, inputs_live=inputs_live)


class MixerInput(models.Model):
    mixer = models.ForeignKey(Mixer, on_delete=models.CASCADE, related_name="inputs")
    stream_name = models.CharField("stream", max_length=255)
    added_at = models.DateTimeField("added", auto_now_add=True)
    audio_level = models.PositiveSmallIntegerField(
        "audio level (%)", default=100, help_text="Gain of its audio in the mix: 100 unchanged, 0 silent."
    )
    video_muted = models.BooleanField("video muted", default=False)
    watermark = models.JSONField("watermark", default=dict, blank=True, help_text="Over this stream's picture.")

    class Meta:
        ordering = ["added_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["mixer", "stream_name"], name="%(app_label)s_%(class)s_unique_stream")
        ]

    def __str__(self) -> str:
        return f"{self.stream_name} in {self.mixer.uri}"
