"""Mixing: WCS mixers, several live streams composed into one output stream by a transcode worker."""

from django.apps import AppConfig


class MixingConfig(AppConfig):
    name = "apps.mixing"
    verbose_name = "Mixing"

    def ready(self) -> None:
        from apps.jobs.services import register_job_kind
        from apps.mixing.models import Mixer
        from apps.mixing.services import mixer_task

        register_job_kind(Mixer, mixer_task)
