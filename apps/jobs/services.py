"""What every media job does around its media: queue it once its stream is live, find that stream;
and around its history: delete one finished job (and on request its files), prune old finished ones."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.jobs.choices import ACTIVE_STATES, FINISHED_STATES, JobState
from apps.jobs.models import StreamJob
from apps.streams.models import Stream

logger = logging.getLogger(__name__)


def live_stream_of(job: StreamJob) -> Stream | None:
    return (
        Stream.objects.live()
        .select_related("node")
        .filter(application_id=job.application_id, name=job.stream_name, node__isnull=False)
        .first()
    )


def dispatch(job: StreamJob, task) -> None:
    """Queue ``task`` for the job once the current transaction commits."""
    transaction.on_commit(lambda: task.delay(job.pk))


def dispatch_if_live(job: StreamJob, task) -> None:
    """Queue the job now if it can run: its stream is live, or it needs none."""
    if not job.needs_live_stream or live_stream_of(job) is not None:
        dispatch(job, task)


def start_reserved(model: type[StreamJob], task, stream: Stream) -> None:
    """OME's reserved tasks: every ready job of a stream that just went live starts now."""
    for job in model.objects.filter(application=stream.application, stream_name=stream.name, state=JobState.READY):
        logger.info("stream %s is live: starting reserved %s", stream, job)
        dispatch(job, task)


# Every kind of media job with its Celery task (as a callable, to avoid import cycles); apps
# register theirs in AppConfig.ready().
JOB_KINDS: list[tuple[type[StreamJob], Callable]] = []


def register_job_kind(model: type[StreamJob], task: Callable) -> None:
    if (model, task) not in JOB_KINDS:
        JOB_KINDS.append((model, task))


def resume_orphaned_jobs() -> int:
    """Jobs that should run but have no worker: those whose worker died (killed, machine gone,
    restart: their lease ran out) and ready ones whose stream is live but whose start was missed
    (the stream came back while the old task was still winding down). Each is queued again; the
    task's claim (which never takes a job whose lease is alive) makes a second delivery harmless."""
    stale = timezone.now() - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    resumed = 0
    for model, task in JOB_KINDS:
        candidates = model.objects.filter(state__in=ACTIVE_STATES).filter(
            Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)
        )
        for job in candidates:
            if job.state != JobState.READY:
                job.expire_lease("its worker stopped: started again")  # a stopping job just stops
            if job.state != JobState.READY:
                continue
            if job.needs_live_stream and live_stream_of(job) is None:
                continue  # reserved: the stream's arrival queues it
            logger.warning("%s has no worker: queueing it again", job)
            # One re-queue per lease period, not one per recovery pass (a ready job's heartbeat
            # says when it was last queued; the claim ignores it).
            model.objects.filter(pk=job.pk, state=JobState.READY).update(heartbeat_at=timezone.now())
            dispatch(job, task())
            resumed += 1
    return resumed


class JobStillActive(Exception):
    """A job that is running, reserved or stopping is never deleted: it must be stopped first."""


def delete_job(job: StreamJob, with_files: bool = False) -> list[str]:
    """Delete a finished (stopped or errored) job's row and, ``with_files``, the files it wrote that
    lie inside the media root (anything else is left alone). Returns the files removed."""
    from apps.jobs.paths import UnsafePath, confine  # the media root's one rule for paths

    with transaction.atomic():
        # Locked so a start-again from the admin or the API cannot revive the row while it goes.
        locked = type(job).objects.select_for_update().filter(pk=job.pk).first()
        if locked is None:
            return []
        if locked.state in ACTIVE_STATES:
            raise JobStillActive(f"{locked} is {locked.get_state_display().lower()}: stop it first")
        files = locked.owned_files() if with_files else []
        locked.delete()
    removed = []
    for stored in files:
        try:
            path = confine(stored)
        except UnsafePath:
            logger.warning("%s: not removing %s (outside the media root)", job, stored)
            continue
        if path.is_file():
            path.unlink()
            removed.append(str(path))
    return removed


def prune_finished_jobs(keep_days: float) -> int:
    """Delete the rows of media jobs that finished (stopped or errored) more than ``keep_days`` ago,
    of every kind; their files stay. Returns how many rows went."""
    cutoff = timezone.now() - timedelta(days=keep_days)
    pruned = 0
    for model, _task in JOB_KINDS:
        old = model.objects.filter(state__in=FINISHED_STATES).filter(
            Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff)
        )
        count, _by_model = old.delete()
        pruned += count
    if pruned:
        logger.info("pruned %d finished job row(s) older than %s days", pruned, keep_days)
    return pruned
