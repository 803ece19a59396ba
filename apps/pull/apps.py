"""Pull: streams made by pulling another server (RTSP, RTMP, HTTP) into the engine, run as Celery media jobs."""

from django.apps import AppConfig


class PullConfig(AppConfig):
    name = "apps.pull"
    verbose_name = "Pull"

    def ready(self) -> None:
        from apps.jobs.services import register_job_kind
        from apps.pull.models import Pull
        from apps.pull.services import pull_task

        register_job_kind(Pull, pull_task)
        from apps.pull import signals  # noqa: F401  (pulled streams show their source type)
