"""Admin of transcodes: which profile runs on which stream, its renditions and CPU cost, with stop /
start-again actions."""

from django.contrib import admin

from apps.jobs.admin import StreamJobAdmin
from apps.transcoding.models import Transcode, WcsTranscoder
from apps.transcoding.services import stop_transcode, transcode_task
from apps.transcoding.transcoders import stop_wcs_transcoder, wcs_transcoder_task


@admin.register(Transcode)
class TranscodeAdmin(StreamJobAdmin):
    stop = stop_transcode
    task = transcode_task
    list_display = [
        "stream_name", "profile", "application", "state", "cpu_percent", "cpu_seconds", "frames_decoded",
        "rendition_list",
    ]  # fmt: skip
    list_filter = ["state", "application__virtual_host", "application"]
    search_fields = ["stream_name", "profile__name", "output_stream_name"]
    readonly_fields = [
        "application", "stream_name", "profile", "output_stream_name", "state", "error", "renditions",
        "rendition_streams", "skipped", "cpu_seconds", "cpu_percent", "frames_decoded", "frames_encoded",
        "images_written", "created_at", "started_at", "finished_at", "heartbeat_at", "celery_task_id",
    ]  # fmt: skip
    exclude = ["variant_names", "track_ids", "sequence"]

    @admin.display(description="renditions")
    def rendition_list(self, job: Transcode) -> str:
        return ", ".join(job.rendition_streams) or "-"

    def has_add_permission(self, request) -> bool:
        return False  # transcodes start when streams go live


@admin.register(WcsTranscoder)
class WcsTranscoderAdmin(StreamJobAdmin):
    """WCS transcoders (/transcoder/*): made through the WCS API, stopped or started again here."""

    stop = stop_wcs_transcoder
    task = wcs_transcoder_task
    list_display = ["uri", "stream_name", "local_stream_name", "application", "state", "frames_encoded"]
    list_filter = ["state", "api_version", "application"]
    search_fields = ["uri", "stream_name", "local_stream_name"]
    readonly_fields = [
        "state", "error", "frames_encoded", "created_at", "started_at", "finished_at", "heartbeat_at", "celery_task_id",
    ]  # fmt: skip
    exclude = ["variant_names", "track_ids", "sequence"]

    def has_add_permission(self, request) -> bool:
        return False  # made through /transcoder/startup, which checks the stream and the encoder
