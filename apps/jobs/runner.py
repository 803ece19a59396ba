"""The life of a media job inside a Celery task, the same for every kind: load the row, claim it
(take its lease), find what it runs on (its live stream, or an engine node), run the media, and
leave the row in a state that tells the truth.

Only the worker that holds the job's lease writes to it: a second delivery of the same task finds
the lease alive and returns "already running"; a worker whose lease was taken over stops at its
next stop check and writes nothing more (``LeaseLost``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import close_old_connections

from apps.engine.models import EngineNode
from apps.jobs.choices import RunOutcome
from apps.jobs.models import LeaseLost, StreamJob
from apps.jobs.services import live_stream_of
from apps.streams.models import Stream
from media_engine.jobs.source import SourceUnavailable

logger = logging.getLogger(__name__)
NO_NODE_RETRY = 2.0  # seconds between looks for an engine node that takes new streams


class JobFailed(Exception):
    """The media cannot go on, for a reason the job's ``error`` shows as it is (no traceback logged)."""


class StopCheck:
    """What the media code calls to ask "should I stop?" (several times a second): reads the job's
    state, and renews the job's lease at most every LEASE_RENEWAL seconds. A job whose lease this
    worker lost (another worker took it over) must stop too: ``lost`` says so."""

    LEASE_RENEWAL = 2.0

    def __init__(self, job: StreamJob, clock=time.monotonic) -> None:
        self.job = job
        self.clock = clock
        self.lost = False
        self._renewed = float("-inf")

    def __call__(self) -> bool:
        if self.lost:
            return True
        now = self.clock()
        if now - self._renewed >= self.LEASE_RENEWAL:
            if not self.job.beat():
                logger.warning("%s: another worker holds the job now: stopping", self.job)
                self.lost = True
                return True
            self._renewed = now
        self.job.refresh_from_db(fields=["state", "lease_token"])
        if self.job.lease_token != self.job.held_lease:
            self.lost = True
            return True
        return self.job.stop_requested


def load_and_claim(model: type[StreamJob], pk: int, task_id: str) -> StreamJob | RunOutcome:
    """The job ``pk`` taken for this task, or the task's outcome when there is nothing to run:
    "gone" (deleted or finished) or "already running" (a worker holds its lease)."""
    close_old_connections()
    job = model.objects.select_related("application__virtual_host").filter(pk=pk).first()
    if job is None or not job.is_active:
        return RunOutcome.GONE
    if not job.claim(task_id):
        # Delivered twice (Redis restored an unacknowledged task, a resumed job...): the worker
        # that holds the lease goes on alone.
        logger.info("%s: already running (its lease is alive): this delivery does nothing", job)
        return RunOutcome.ALREADY_RUNNING
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


# media(job, where, should_stop): ``where`` is the job's live Stream (needs_live_stream), an
# EngineNode (needs_engine_node) or None. It returns when the media ended, optionally with the
# reason a job that needs no live stream stopped (shown as its ``error``).
Media = Callable[[StreamJob, "Stream | EngineNode | None", StopCheck], "str | None"]


def run_stream_job(model: type[StreamJob], pk: int, media: Media, task_id: str = "") -> str:
    """Run ``media`` for the job ``pk``; returns the outcome (a RunOutcome value, as a plain string
    for Celery's result and log)."""
    job = load_and_claim(model, pk, task_id)
    if isinstance(job, RunOutcome):
        return job.value
    should_stop = StopCheck(job)
    try:
        return _run(job, media, should_stop).value
    except LeaseLost:
        logger.warning("%s: another worker took the job over: this one leaves it", job)
        return RunOutcome.LEASE_LOST.value


def _run(job: StreamJob, media: Media, should_stop: StopCheck) -> RunOutcome:
    if job.stop_requested:
        return _stopped(job)
    where: Stream | EngineNode | None = None
    if job.needs_live_stream:
        where = live_stream_of(job)
        if where is None:
            job.mark_waiting()  # reserved: the stream's arrival queues it again
            return RunOutcome.WAITING
    elif job.needs_engine_node:
        where = wait_for_engine_node(should_stop)
        if where is None:
            return _stopped(job)
    try:
        reason = media(job, where, should_stop)
    except LeaseLost:
        raise
    except SourceUnavailable as error:
        if not job.needs_live_stream:
            return _failed(job, str(error))
        # The stream ended or its node went down between the lookup and the play (a restart, a
        # publisher dropping): not the job's fault. It waits, reserved, and says why.
        return _ended(job, should_stop, f"cannot read the stream from its engine node: {error}")
    except JobFailed as error:
        return _failed(job, str(error))
    except Exception as error:  # noqa: BLE001 - the row must say what happened
        logger.exception("%s failed", job)
        return _failed(job, str(error))
    if not job.needs_live_stream:
        # It ran until stopped, or until it had nothing left to do (no source, unused): done.
        return RunOutcome.STOPPED if job.mark_stopped(reason or "") else _lost(job, should_stop)
    return _ended(job, should_stop, "")


def _ended(job: StreamJob, should_stop: StopCheck, reason: str) -> RunOutcome:
    """The stream ended: stopped if a stop was asked, else reserved until the stream is back."""
    for _ in range(3):  # a stop may land between the two conditional updates
        if job.mark_stopped(requested_only=True):
            return RunOutcome.STOPPED
        if job.mark_waiting(reason):
            return RunOutcome.WAITING
        if job.held_lease != job.lease_token:
            break
    return _lost(job, should_stop)


def _stopped(job: StreamJob) -> RunOutcome:
    return RunOutcome.STOPPED if job.mark_stopped() else RunOutcome.LEASE_LOST


def _failed(job: StreamJob, message: str) -> RunOutcome:
    if job.mark_error(message):
        return RunOutcome.ERROR
    logger.warning("%s: failed (%s) after another worker took it over", job, message)
    return RunOutcome.LEASE_LOST


def _lost(job: StreamJob, should_stop: StopCheck) -> RunOutcome:
    logger.warning("%s: another worker took the job over: this one leaves it", job)
    should_stop.lost = True
    return RunOutcome.LEASE_LOST
