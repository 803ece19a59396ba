"""What every media job does around its media: queue it once its stream is live, find that stream."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.jobs.choices import ACTIVE_STATES, JobState
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
