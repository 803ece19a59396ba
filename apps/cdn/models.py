"""WCS CDN transcoding profiles: a name (WCS names them like ``-720p``, the suffix a player adds to a
stream name) and its audio/video encoding parameters, in WCS's shape; and CDN routes: an edge node
pulling a stream from the node that holds it (written from the edge's heartbeats)."""

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


class StreamRoute(models.Model):
    """An edge node playing a stream that another node (origin or transcoder) holds: one pull over RTMP
    from ``origin``, shared by all the edge's viewers. The edge's engine writes its routes on every
    heartbeat (`apps.cdn.services.sync_routes`); they go when the pull ends or either node dies."""

    edge = models.ForeignKey("engine.EngineNode", on_delete=models.CASCADE, related_name="edge_routes")
    origin = models.ForeignKey("engine.EngineNode", on_delete=models.CASCADE, related_name="origin_routes")
    stream = models.ForeignKey(
        "streams.Stream", on_delete=models.CASCADE, related_name="routes", help_text="The live row on the origin."
    )
    name = models.CharField("stream name", max_length=255, help_text="The name viewers play on the edge.")
    started_at = models.DateTimeField("started")
    viewers = models.PositiveIntegerField("viewers", default=0, help_text="The edge's viewers of the stream.")
    bytes_in = models.PositiveBigIntegerField("bytes pulled", default=0)
    state = models.CharField("state", max_length=30, blank=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        ordering = ["started_at", "pk"]
        verbose_name = "CDN route"
        constraints = [
            models.UniqueConstraint(fields=["edge", "stream"], name="%(app_label)s_%(class)s_unique_edge_stream"),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.origin_id} -> {self.edge_id}"
