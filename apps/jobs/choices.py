"""States of media jobs: OME's record/push states, plus "retrying" for jobs that reconnect."""

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
