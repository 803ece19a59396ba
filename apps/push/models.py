"""Push tasks (OME's :startPush): where a live stream is re-published, and how that is going."""

from __future__ import annotations

from django.db import models

from apps.jobs.choices import ACTIVE_STATES
from apps.jobs.models import StreamJob
from apps.jobs.paths import confine
from apps.push.choices import PushProtocol
from media_engine.jobs.audio_control import AudioControl


class Push(StreamJob):
    push_id = models.CharField("id", max_length=200, help_text="The id given in :startPush.")
    protocol = models.CharField("protocol", max_length=10, choices=PushProtocol.choices)
    url = models.CharField("target URL", max_length=1000)
    stream_key = models.CharField("stream key", max_length=500, blank=True)
    sent_bytes = models.BigIntegerField("bytes sent (this connection)", default=0)
    sent_time_ms = models.BigIntegerField("time sent (this connection, ms)", default=0)
    total_sent_bytes = models.BigIntegerField("total bytes sent", default=0)
    total_sent_time_ms = models.BigIntegerField("total time sent (ms)", default=0)
    # Audio control (WCS transponders): the audio is re-encoded so that it can change while pushed.
    audio_control = models.BooleanField(
        "audio control", default=False, help_text="Re-encode the audio so that it can be muted or mixed with a sound."
    )
    audio_muted = models.BooleanField("audio muted", default=False)
    sound_file = models.CharField("injected sound", max_length=1000, blank=True, help_text="Under the media root.")
    sound_loop = models.BooleanField("loop the sound", default=False)
    sound_serial = models.PositiveIntegerField("sound starts", default=0, editable=False)

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

    def audio_state(self) -> AudioControl:
        """What the pushed audio should be now, for the media job."""
        sound = str(confine(self.sound_file)) if self.sound_file else None
        return AudioControl(self.audio_muted, sound, self.sound_loop, self.sound_serial)
