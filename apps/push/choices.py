"""Named choices of the push app."""

from django.db import models


class PushProtocol(models.TextChoices):
    RTMP = "rtmp", "RTMP"
    MPEGTS = "mpegts", "MPEG-TS (UDP/TCP)"
    SRT = "srt", "SRT"
