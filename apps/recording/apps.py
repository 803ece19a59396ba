"""Recording: OME record tasks (reserved until the stream is live), run as Celery media jobs."""

from django.apps import AppConfig


class RecordingConfig(AppConfig):
    name = "apps.recording"
    verbose_name = "Recording"

    def ready(self) -> None:
        from apps.recording import signals  # noqa: F401  (starts reserved records when streams go live)
