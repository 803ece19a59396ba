"""The life of a job: created by an API call, run by a worker, finished by an event or cancelled at
its deadline, announced on the Channels layer when it ends, and pruned when old.

The API server awaits that announcement (``wait_for_job``): no thread and no database loop waits.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import close_old_connections, transaction
from django.utils import timezone

from apps.async_jobs.choices import FINISHED_STATES, UNFINISHED_STATES, JobState
from apps.async_jobs.models import Job
from apps.async_jobs.operations import Done, JobFailed, operation_for

logger = logging.getLogger(__name__)
# Jobs go behind the control queue's other tasks (Redis: 0 is taken first, and is the default), so a
# burst of jobs never delays them; deadline tasks keep the default and cancel on time.
JOB_TASK_PRIORITY = 9


def completion_group(job_id) -> str:
    return f"async-job.{job_id}"


def announce(job: Job) -> None:
    """Tell whoever awaits the job that it ended, once the change is committed (they read the row)."""

    def send() -> None:
        try:
            async_to_sync(get_channel_layer().group_send)(
                completion_group(job.pk), {"type": "job.finished", "state": job.state}
            )
        except Exception:  # noqa: BLE001 - the row is the truth; a waiter reads it at its wait's end
            logger.exception("could not announce the end of %s", job)

    transaction.on_commit(send)


# -- the API server's side --------------------------------------------------------------------------


def create_job(method: str, request: dict, timeout_seconds: float) -> Job:
    """A pending job, queued for a control worker with its deadline once the row is committed."""
    from apps.async_jobs.tasks import cancel_job_at_deadline, run_job

    with transaction.atomic():
        job = Job.new(method, request, timeout_seconds)
        job_id = str(job.pk)
        transaction.on_commit(lambda: run_job.apply_async((job_id,), priority=JOB_TASK_PRIORITY))
        transaction.on_commit(lambda: cancel_job_at_deadline.apply_async((job_id,), countdown=timeout_seconds))
    return job


async def wait_for_job(job_id, wait_seconds: float) -> Job:
    """The job once it has ended, or as it is after ``wait_seconds``: awaits its announcement."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = completion_group(job_id)
    await layer.group_add(group, channel)
    try:
        # Joined before reading: an end committed after this read is announced to us.
        job = await Job.objects.aget(pk=job_id)
        if not job.is_finished and wait_seconds > 0:
            try:
                async with asyncio.timeout(wait_seconds):
                    await layer.receive(channel)
            except TimeoutError:
                pass
            job = await Job.objects.aget(pk=job_id)
    finally:
        await layer.group_discard(group, channel)
    return job


# -- the worker's side ------------------------------------------------------------------------------


def run_job(job_id: str) -> None:
    """Start the job's operation; it ends here, or later by an event on what it started (``recheck``)."""
    close_old_connections()
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return
    if job.is_overdue:
        cancel_job(job, f"Not started within its timeout of {job.timeout_seconds:g} s")
        return
    if not job.mark_running():
        return  # cancelled meanwhile, or another delivery of the task has it
    try:
        operation = operation_for(job.method)
        started = operation.start(job.request)
    except JobFailed as failure:
        _finish(job, failure=failure)
        return
    except Exception as error:  # noqa: BLE001 - the job must say what happened
        logger.exception("%s failed", job)
        _finish(job, failure=JobFailed(500, f"Internal error: {error}"))
        return
    handle = {**started.handle, "result": started.result}
    if started.done:
        if not _finish(job, done=Done(started.result)):
            operation.stop(job.request, handle)  # cancelled while it ran: undo
        return
    if not job.mark_waiting(handle, started.watch):
        operation.stop(job.request, handle)
        return
    recheck(job)  # what it waits for may have happened before `watch` was stored


def _finish(job: Job, done: Done | None = None, failure: JobFailed | None = None) -> bool:
    changed = job.mark_done(done.result) if failure is None else job.mark_failed(failure.status, failure.message)
    if changed:
        announce(job)
    return changed


def recheck(job: Job) -> None:
    """Ask the operation whether the running job is done now."""
    if job.state != JobState.RUNNING or not job.watch:
        return
    try:
        outcome = operation_for(job.method).check(job.request, job.handle)
    except JobFailed as failure:
        _finish(job, failure=failure)
        return
    if outcome is not None:
        _finish(job, done=outcome)


def recheck_watching(watch: str) -> None:
    """Something that running jobs may wait for changed (``watch``, e.g. ``pull:12``)."""
    for job in Job.objects.filter(state=JobState.RUNNING, watch=watch):
        recheck(job)


def cancel_job(job: Job, reason: str) -> bool:
    """Cancel an unfinished job and stop what it started."""
    if not job.mark_cancelled(reason):
        return False
    logger.info("%s cancelled: %s", job, reason)
    if job.handle:
        try:
            operation_for(job.method).stop(job.request, job.handle)
        except Exception:  # noqa: BLE001 - still cancelled; the admin shows what is left running
            logger.exception("could not stop what %s started", job)
    announce(job)
    return True


def cancel_if_overdue(job_id: str) -> bool:
    job = Job.objects.filter(pk=job_id).first()
    if job is None or not job.is_overdue:
        return False
    return cancel_job(job, f"Not done within its timeout of {job.timeout_seconds:g} s")


def cancel_overdue_jobs(grace_seconds: float = 2.0) -> int:
    """Jobs past their deadline whose deadline task was lost (a worker restarted): cancel them now."""
    late = timezone.now() - timedelta(seconds=grace_seconds)
    return sum(
        cancel_if_overdue(str(job_id))
        for job_id in Job.objects.filter(state__in=UNFINISHED_STATES, deadline__lt=late).values_list("pk", flat=True)
    )


def prune_finished_jobs(older_than_seconds: float) -> int:
    """Delete jobs that ended more than ``older_than_seconds`` ago."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    deleted, _ = Job.objects.filter(state__in=FINISHED_STATES, finished_at__lt=cutoff).delete()
    return deleted
