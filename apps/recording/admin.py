"""Admin of record tasks: state, counters and files, with stop / start-again actions."""

from django.contrib import admin

from apps.jobs.admin import StreamJobAdmin
from apps.recording.models import Record, RecordFile
from apps.recording.services import record_task, stop_record


class RecordFileInline(admin.TabularInline):
    model = RecordFile
    extra = 0
    can_delete = False
    fields = ["sequence", "path", "started_at", "finished_at", "bytes", "duration_ms"]
    readonly_fields = fields


@admin.register(Record)
class RecordAdmin(StreamJobAdmin):
    stop = stop_record
    task = record_task
    list_display = [
        "record_id", "application", "stream_name", "record_state", "sequence", "total_record_bytes", "created_at"
    ]  # fmt: skip
    list_filter = ["state", "application__virtual_host", "application"]
    search_fields = ["record_id", "stream_name", "file_path"]
    inlines = [RecordFileInline]
    exclude = ["state"]  # shown read-only, in OME's words, as record_state

    @admin.display(description="state", ordering="state")
    def record_state(self, record: Record) -> str:
        return record.record_state  # OME's words: "recording" while it runs

    readonly_fields = [
        "record_state", "error", "sequence", "created_at", "started_at", "finished_at", "record_bytes",
        "record_time_ms", "total_record_bytes", "total_record_time_ms", "celery_task_id",
    ]  # fmt: skip
