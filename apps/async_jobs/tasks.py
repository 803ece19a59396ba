"""Celery tasks of jobs (queue `control`): run one, cancel it at its deadline, and the beat's sweeps."""

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections

from apps.async_jobs import services


@shared_task(ignore_result=True, acks_late=True)
def run_job(job_id: str) -> None:
    services.run_job(job_id)


@shared_task(ignore_result=True)
def cancel_job_at_deadline(job_id: str) -> bool:
    close_old_connections()
    return services.cancel_if_overdue(job_id)


@shared_task(ignore_result=True)
def cancel_overdue_jobs() -> int:
    close_old_connections()
    return services.cancel_overdue_jobs()


@shared_task(ignore_result=True)
def prune_finished_jobs() -> int:
    close_old_connections()
    return services.prune_finished_jobs(settings.ASYNC_JOBS_KEEP_FINISHED_SECONDS)
