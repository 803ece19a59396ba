"""Recording: OME record tasks (reserved until the stream is live), run as Celery media jobs."""

from django.apps import AppConfig


class RecordingConfig(AppConfig):
    name = "apps.recording"
    verbose_name = "Recording"

    def ready(self) -> None:
        from apps.jobs.services import register_job_kind
        from apps.recording.models import Record
        from apps.recording.services import record_task

        register_job_kind(Record, record_task)
        from apps.recording import signals  # noqa: F401  (starts reserved records when streams go live)
