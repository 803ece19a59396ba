"""Admin of HLS dumps: state, folder, progress, with stop / start-again actions."""

from django.contrib import admin

from apps.hls_dump.models import HlsDump
from apps.hls_dump.services import dump_task, stop_dump
from apps.jobs.admin import StreamJobAdmin


@admin.register(HlsDump)
class HlsDumpAdmin(StreamJobAdmin):
    stop = stop_dump
    task = dump_task
    list_display = ["dump_id", "application", "stream_name", "output_path", "state", "dumped_segments", "dumped_bytes"]
    list_filter = ["state", "application__virtual_host", "application"]
    search_fields = ["dump_id", "stream_name", "output_path"]
    readonly_fields = [
        "state", "error", "sequence", "created_at", "started_at", "finished_at", "dumped_segments", "dumped_bytes",
        "celery_task_id", "heartbeat_at",
    ]  # fmt: skip
