"""How media jobs write times for people and files: OME's timestamp form (local time with
milliseconds and offset), shared by the record info file and the OME API's JSON."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def ome_time(value: datetime | None) -> str | None:
    """OME's timestamps: local time with milliseconds and offset, e.g. 2023-03-15T19:46:13.728+09:00."""
    if value is None:
        return None
    return timezone.localtime(value).isoformat(timespec="milliseconds")
