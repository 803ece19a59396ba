"""WCS CDN transcoding profiles: a name (WCS names them like ``-720p``, the suffix a player adds to a
stream name) and its audio/video encoding parameters, in WCS's shape."""

from __future__ import annotations

from django.db import models


class CdnProfile(models.Model):
    name = models.CharField("name", max_length=100, unique=True, help_text='WCS style, e.g. "-720p".')
    audio = models.JSONField("audio", default=dict, blank=True, help_text='e.g. {"codec": "aac", "rate": 48000}')
    video = models.JSONField("video", default=dict, blank=True, help_text='e.g. {"codec": "h264", "height": 720}')
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "CDN transcoding profile"

    def __str__(self) -> str:
        return self.name

    def to_wcs(self) -> dict:
        profile = {}
        if self.audio:
            profile["audio"] = self.audio
        if self.video:
            profile["video"] = self.video
        return {"name": self.name, "profile": profile}
