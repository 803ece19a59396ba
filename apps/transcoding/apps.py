"""Transcoding: output profiles applied to live streams (ABR renditions published back into the
engine, thumbnails), one Celery job per stream and profile on the `transcode` queue."""

from django.apps import AppConfig


class TranscodingConfig(AppConfig):
    name = "apps.transcoding"
    verbose_name = "Transcoding"

    def ready(self) -> None:
        from apps.jobs.services import register_job_kind
        from apps.transcoding.models import Transcode
        from apps.transcoding.services import transcode_task

        register_job_kind(Transcode, transcode_task)
        from apps.transcoding.models import WcsTranscoder
        from apps.transcoding.transcoders import wcs_transcoder_task

        register_job_kind(WcsTranscoder, wcs_transcoder_task)
        from apps.transcoding import signals  # noqa: F401  (starts transcodes when streams go live)
