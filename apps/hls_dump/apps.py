"""HLS dump: OME's :startHlsDump / :stopHlsDump, a live stream's LL-HLS output written to a folder by a
Celery media job."""

from django.apps import AppConfig


class HlsDumpConfig(AppConfig):
    name = "apps.hls_dump"
    verbose_name = "HLS dump"

    def ready(self) -> None:
        from apps.hls_dump.models import HlsDump
        from apps.hls_dump.services import dump_task
        from apps.jobs.services import register_job_kind

        # Registered for recovery: a dump whose worker died is started again and continues its folder.
        register_job_kind(HlsDump, dump_task)
