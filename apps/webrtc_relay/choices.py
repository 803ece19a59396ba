"""Directions and states of a WebRTC relay (the states are WCS's PullAgent ``status`` values)."""

from django.db import models


class Direction(models.TextChoices):
    PULL = "pull", "pull (WHEP in)"
    PUSH = "push", "push (WHIP out)"


class RelayStatus(models.TextChoices):
    PENDING = "PENDING", "connecting"
    PUBLISHING = "PUBLISHING", "relaying"
    FAILED = "FAILED", "failed"
    STOPPED = "STOPPED", "stopped"


ACTIVE_STATUSES = [RelayStatus.PENDING, RelayStatus.PUBLISHING]
