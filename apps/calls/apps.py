"""Calls: SIP calls placed through WCS /call/* and bridged to live streams, run as Celery media jobs."""

from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "apps.calls"
    verbose_name = "SIP calls"

    def ready(self) -> None:
        from apps.calls.models import Call
        from apps.calls.services import call_task
        from apps.jobs.services import register_job_kind

        # A call whose worker died is placed again by the job recovery, like any media job.
        register_job_kind(Call, call_task)
        from apps.calls import signals  # noqa: F401  (a call ends with its job)
