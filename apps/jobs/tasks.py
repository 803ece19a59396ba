"""Control tasks of media jobs (queue `control`, run by Celery beat)."""

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections

from apps.jobs.services import prune_finished_jobs as prune
from apps.jobs.services import resume_orphaned_jobs as resume


@shared_task(ignore_result=True)
def resume_orphaned_jobs() -> int:
    return resume()


@shared_task(ignore_result=True)
def prune_finished_jobs() -> int:
    """Finished job rows older than STREAMHUB_JOB_HISTORY_DAYS go (their files stay)."""
    close_old_connections()
    return prune(settings.JOB_HISTORY_DAYS)
