"""Media jobs: what record, push (and later pull, transcode...) tasks share: states, reservation
until the stream is live, and the hand-off to Celery."""

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "apps.jobs"
    verbose_name = "Media jobs"
