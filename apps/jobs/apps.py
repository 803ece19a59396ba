"""Media jobs: what every kind (record, push, pull, HLS dump, transcodes, mixer, multi-recorder)
shares: states and guarded transitions, the lease, reservation until the stream is live, the one
runner, and the hand-off to Celery."""

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "apps.jobs"
    verbose_name = "Media jobs"
