"""Control tasks of media jobs (queue `control`, run by Celery beat)."""

from celery import shared_task

from apps.jobs.services import resume_orphaned_jobs as resume


@shared_task(ignore_result=True)
def resume_orphaned_jobs() -> int:
    return resume()
