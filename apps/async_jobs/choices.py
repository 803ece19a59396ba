"""States of an asynchronous job, as WCS REST API v3 names them."""

from django.db import models


class JobState(models.TextChoices):
    PENDING = "PENDING", "Pending (waiting for a worker)"
    RUNNING = "RUNNING", "Running"
    DONE = "DONE", "Done"
    FAILED = "FAILED", "Failed"
    # Not done within its timeout: what it started has been stopped.
    CANCELLED = "CANCELLED", "Cancelled (timeout)"


UNFINISHED_STATES = [JobState.PENDING, JobState.RUNNING]
FINISHED_STATES = [JobState.DONE, JobState.FAILED, JobState.CANCELLED]
