"""The life of a media job inside a Celery task, the same for every kind: load the row, wait for
the stream, run the media, and leave the row in a state that tells the truth."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Q
from django.utils import timezone

from apps.engine.models import EngineNode
from apps.jobs.choices import JobState
from apps.jobs.models import StreamJob
from apps.jobs.services import live_stream_of
from apps.streams.models import Stream
from media_engine.jobs.source import SourceUnavailable

logger = logging.getLogger(__name__)
RUNNING_STATES = (JobState.STARTED, JobState.RETRYING, JobState.STOPPING)
NO_NODE_RETRY = 2.0  # seconds between looks for an engine node that takes new streams


class StopCheck:
    """What the media code calls to ask "should I stop?" (several times a second): reads the job's
    state, and renews the job's lease at most every LEASE_RENEWAL seconds."""

    LEASE_RENEWAL = 2.0

    def __init__(self, job: StreamJob, clock=time.monotonic) -> None:
        self.job = job
        self.clock = clock
        self._renewed = float("-inf")

    def __call__(self) -> bool:
        now = self.clock()
        if now - self._renewed >= self.LEASE_RENEWAL:
            self.job.beat()
            self._renewed = now
        self.job.refresh_from_db(fields=["state"])
        return self.job.stop_requested


def claim(job: StreamJob, task_id: str) -> bool:
    """Take the job for this task, atomically (one conditional UPDATE, safe on SQLite too): a
    ready job, one whose worker's lease ran out, or one this very task held before."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    claimable = Q(state=JobState.READY) | Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)
    if task_id:
        claimable |= Q(celery_task_id=task_id)
    taken = (
        type(job)
        .objects.filter(pk=job.pk, state__in=[JobState.READY, JobState.STARTED, JobState.RETRYING])
        .filter(claimable)
        .update(state=JobState.STARTED, heartbeat_at=now, celery_task_id=task_id)
    )
    if taken:
        job.refresh_from_db()
    return bool(taken)


def load_and_claim(model: type[StreamJob], pk: int, task_id: str) -> StreamJob | str:
    """The job ``pk`` taken for this task, or the task's outcome when there is nothing to run:
    "gone" (deleted or finished) or "already running" (another worker has it)."""
    close_old_connections()
    job = model.objects.select_related("application__virtual_host").filter(pk=pk).first()
    if job is None or not job.is_active:
        return "gone"
    if not claim(job, task_id):
        # Delivered twice (a resumed job, the broker's visibility timeout...): another worker has it.
        return "already running"
    return job


def wait_for_engine_node(should_stop: Callable[[], bool], retry: float = NO_NODE_RETRY) -> EngineNode | None:
    """An engine node that takes new streams, waiting for one to come up; None if ``should_stop()`` first."""
    while True:
        node = EngineNode.for_new_streams()
        if node is not None:
            return node
        if should_stop():
            return None
        time.sleep(retry)


def run_stream_job(
    model: type[StreamJob], pk: int, media: Callable[[StreamJob, Stream, StopCheck], None], task_id: str = ""
) -> str:
    """Run ``media(job, stream, should_stop)`` for the job ``pk``; returns the outcome ("stopped", "waiting"...)."""
    job = load_and_claim(model, pk, task_id)
    if isinstance(job, str):
        return job
    if job.stop_requested:
        job.mark_stopped()
        return "stopped"
    stream = live_stream_of(job)
    if stream is None:
        job.mark_waiting()  # reserved: the stream's arrival queues it again
        return "waiting"
    try:
        media(job, stream, StopCheck(job))
    except SourceUnavailable as error:
        # The stream ended or its node went down between the lookup and the play (a restart, a
        # publisher dropping): not the job's fault. It waits, reserved, and says why.
        job.refresh_from_db()
        if job.stop_requested:
            job.mark_stopped()
            return "stopped"
        job.mark_waiting(f"cannot read the stream from its engine node: {error}")
        return "waiting"
    except Exception as error:  # noqa: BLE001 - the row must say what happened
        logger.exception("%s failed", job)
        job.refresh_from_db()
        job.mark_error(str(error))
        return "error"
    job.refresh_from_db()
    if job.stop_requested:
        job.mark_stopped()
        return "stopped"
    job.mark_waiting()  # the stream ended: reserved until it is back
    return "waiting"
