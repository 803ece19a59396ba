"""WCS /sfu/stats: participants of an SFU room. StreamHub has no SFU rooms (conferences are mixed
or played as separate streams), so every room is unknown: 404, never an invented participant list."""

from __future__ import annotations

from rest_framework import serializers

from apps.api_wcs.errors import WcsError
from apps.api_wcs.views.base import Method


class RoomName(serializers.Serializer):
    roomName = serializers.CharField(max_length=255)


def sfu_stats(data: dict) -> list[dict]:
    raise WcsError(404, f"Not found: no SFU room {data['roomName']}")


METHODS = [
    Method("sfu", "stats", sfu_stats, RoomName, None, "Current participants of an SFU room",
           ((400, "Bad request"), (404, "Not found"), (500, "Internal error"))),
]  # fmt: skip
