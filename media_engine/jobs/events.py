"""What a media job reports through its ``on_state(event, error)`` callback: one vocabulary for
every job in this package (push, pull, mixer, transcode; an HLS dump's run returns one), which the
Django side maps onto job states. Values are plain strings (a StrEnum), so a callback may compare
them with either."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class MediaEvent(StrEnum):
    STARTED = "started"  # the media flows (connected to the target / live in the engine)
    FAILOVER = "failover"  # moved to the next source URL (``error`` says why)
    RETRYING = "retrying"  # the target or source failed; a new attempt follows a backoff
    STOPPED = "stopped"  # stop requested or the source ended
    COMPLETED = "completed"  # the source ended and the output is whole (what an HLS dump's run returns)
    ERROR = "error"  # fatal, just before ``run`` raises


StateCallback = Callable[[MediaEvent, str | None], None]
