"""A WebRTC relay between this platform's engine node and another node, run by the engine node."""

from __future__ import annotations

import uuid

from django.db import models

from apps.webrtc_relay.choices import ACTIVE_STATUSES, Direction, RelayStatus


def new_relay_id() -> str:
    return str(uuid.uuid4())


def signalling_target(uri: str, remote_stream_name: str = "") -> str:
    """The URL the engine posts its offer to: ``uri``, plus ``/remote_stream_name`` if one is given."""
    base = uri.split("?", 1)[0].rstrip("/")
    return f"{base}/{remote_stream_name}" if remote_stream_name else base


class WebRtcRelayQuerySet(models.QuerySet):
    def active(self) -> WebRtcRelayQuerySet:
        return self.filter(status__in=ACTIVE_STATUSES)


class WebRtcRelay(models.Model):
    relay_id = models.CharField(
        "media session id", max_length=64, unique=True, default=new_relay_id, help_text="WCS's mediaSessionId."
    )
    direction = models.CharField("direction", max_length=8, choices=Direction.choices)
    application = models.ForeignKey("hosting.Application", on_delete=models.CASCADE, related_name="webrtc_relays")
    node = models.ForeignKey(
        "engine.EngineNode", on_delete=models.SET_NULL, null=True, blank=True, help_text="The node running it."
    )
    uri = models.CharField("URI", max_length=1000, help_text="The other node's WHEP (pull) or WHIP (push) URL.")
    local_stream_name = models.CharField("local stream", max_length=255)
    remote_stream_name = models.CharField("remote stream", max_length=255, blank=True)
    status = models.CharField("status", max_length=16, choices=RelayStatus.choices, default=RelayStatus.PENDING)
    error = models.TextField("error", blank=True)
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    objects = WebRtcRelayQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]
        verbose_name = "WebRTC relay"

    def __str__(self) -> str:
        return f"{self.direction} {self.local_stream_name} {self.uri}"

    @property
    def signalling_url(self) -> str:
        return signalling_target(self.uri, self.remote_stream_name)

    def mark(self, status: str, error: str = "") -> None:
        """What the engine reports; an ended relay stays ended."""
        if self.status in (RelayStatus.FAILED, RelayStatus.STOPPED):
            return
        self.status, self.error = status, error
        self.save(update_fields=["status", "error", "updated_at"])
