"""Multiple streams recorder (WCS /multipleRecorder/*): several live streams recorded into one MP4
by a Celery media job."""

from django.apps import AppConfig


class MultiRecorderConfig(AppConfig):
    name = "apps.multi_recorder"
    verbose_name = "Multiple streams recorders"

    def ready(self) -> None:
        from apps.jobs.services import register_job_kind
        from apps.multi_recorder.models import MultiRecorder
        from apps.multi_recorder.services import multi_record_task

        # Registered for recovery: a recorder whose worker died is started again (with a new file).
        register_job_kind(MultiRecorder, multi_record_task)
