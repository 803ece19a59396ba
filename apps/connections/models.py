"""A client connected to the events WebSocket (/ws/events/): one row while its socket is open."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Connection(models.Model):
    session_id = models.CharField(
        "session id", max_length=200, unique=True, help_text="WCS's sessionId: /client:port/server:port."
    )
    channel_name = models.CharField("channel", max_length=200, help_text="Where messages for the client go.")
    app_key = models.CharField("app key", max_length=100, blank=True)
    client_version = models.CharField("client version", max_length=100, blank=True)
    user_agent = models.CharField("user agent", max_length=300, blank=True)
    log_level = models.CharField("client log level", max_length=20, blank=True, help_text="Empty: client log off.")
    connected_at = models.DateTimeField("connected", default=timezone.now)

    class Meta:
        ordering = ["connected_at"]

    def __str__(self) -> str:
        return self.session_id
