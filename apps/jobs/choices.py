"""States of media jobs: OME's push states (ready, started, stopping, stopped, error), plus
"retrying" for jobs that reconnect. Records show "recording" for "started" (OME's record states),
see ``apps.recording.choices.RecordState``."""

from enum import StrEnum

from django.db import models


class JobState(models.TextChoices):
    READY = "ready", "Ready (waiting for the stream)"
    STARTED = "started", "Started"
    # StreamHub's addition: the target went away and the job reconnects with backoff (`error` says why).
    RETRYING = "retrying", "Retrying"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    ERROR = "error", "Error"


ACTIVE_STATES = [JobState.READY, JobState.STARTED, JobState.RETRYING, JobState.STOPPING]
# Done for good: only these rows may be deleted or pruned (files stay unless asked).
FINISHED_STATES = [JobState.STOPPED, JobState.ERROR]
# A worker runs the job (it holds the lease) and the media flows or reconnects.
RUNNING_STATES = [JobState.STARTED, JobState.RETRYING]
# A worker holds the lease: running, or winding down after a stop request.
LEASED_STATES = [*RUNNING_STATES, JobState.STOPPING]


class RunOutcome(StrEnum):
    """How one delivery of a media job's Celery task ended (its result, as the worker logs it)."""

    GONE = "gone"  # deleted or finished before this delivery
    ALREADY_RUNNING = "already running"  # another delivery holds the job's lease: this one did nothing
    STOPPED = "stopped"
    WAITING = "waiting"  # the stream ended or is not live: ready (reserved) for its return
    ERROR = "error"
    LEASE_LOST = "lease lost"  # another worker took the job over meanwhile: this one left it
