"""Push: OME push tasks (RTMP, MPEG-TS, SRT out), reserved until the stream is live, run as Celery media jobs."""

from django.apps import AppConfig


class PushConfig(AppConfig):
    name = "apps.push"
    verbose_name = "Push"

    def ready(self) -> None:
        from apps.jobs.services import register_job_kind
        from apps.push.models import Push
        from apps.push.services import push_task

        register_job_kind(Push, push_task)
        from apps.push import signals  # noqa: F401  (starts reserved pushes when streams go live)
