"""What every media job does around its media: queue it once its stream is live, find that stream."""

from __future__ import annotations

import logging

from django.db import transaction

from apps.jobs.choices import JobState
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
    if live_stream_of(job) is not None:
        dispatch(job, task)


def start_reserved(model: type[StreamJob], task, stream: Stream) -> None:
    """OME's reserved tasks: every ready job of a stream that just went live starts now."""
    for job in model.objects.filter(application=stream.application, stream_name=stream.name, state=JobState.READY):
        logger.info("stream %s is live: starting reserved %s", stream, job)
        dispatch(job, task)
