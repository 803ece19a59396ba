"""Named choices of the recording app."""

from django.db import models

from apps.jobs.choices import JobState


class RecordState(models.TextChoices):
    """A record's state as OME names it: a running record is "recording" (a push says "started")."""

    READY = "ready", "Ready (waiting for the stream)"
    RECORDING = "recording", "Recording"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    ERROR = "error", "Error"


# The job states a record goes through, in OME's words (a record never retries: a stream that
# ends makes it ready again, but the state is mapped in case).
RECORD_STATE_OF_JOB = {
    JobState.READY: RecordState.READY,
    JobState.STARTED: RecordState.RECORDING,
    JobState.RETRYING: RecordState.RECORDING,
    JobState.STOPPING: RecordState.STOPPING,
    JobState.STOPPED: RecordState.STOPPED,
    JobState.ERROR: RecordState.ERROR,
}


class SegmentationRule(models.TextChoices):
    CONTINUITY = "continuity", "Continuous timestamps across files"
    DISCONTINUITY = "discontinuity", "Each file starts at zero"


# OME's File publisher defaults, relative to the media root.
DEFAULT_FILE_PATH = "${VirtualHost}/${Application}/${Stream}/${StartTime:YYYYMMDDhhmmss}_${Sequence}.mp4"
DEFAULT_INFO_PATH = "${VirtualHost}/${Application}/${Stream}/${Id}.xml"
