"""Admin of record tasks: state, counters and files, with start/stop actions."""

from django.contrib import admin, messages

from apps.jobs import services as jobs
from apps.jobs.choices import JobState
from apps.recording.models import Record, RecordFile
from apps.recording.services import record_task, stop_record


class RecordFileInline(admin.TabularInline):
    model = RecordFile
    extra = 0
    can_delete = False
    fields = ["sequence", "path", "started_at", "finished_at", "bytes", "duration_ms"]
    readonly_fields = fields


@admin.register(Record)
class RecordAdmin(admin.ModelAdmin):
    list_display = ["record_id", "application", "stream_name", "state", "sequence", "total_record_bytes", "created_at"]
    list_filter = ["state", "application__virtual_host", "application"]
    search_fields = ["record_id", "stream_name", "file_path"]
    list_select_related = ["application__virtual_host"]
    inlines = [RecordFileInline]
    actions = ["stop_records", "retry_records"]
    readonly_fields = [
        "state", "error", "sequence", "created_at", "started_at", "finished_at", "record_bytes", "record_time_ms",
        "total_record_bytes", "total_record_time_ms", "celery_task_id",
    ]  # fmt: skip

    @admin.action(description="Stop the selected records")
    def stop_records(self, request, queryset):
        for record in queryset:
            stop_record(record)
        self.message_user(request, f"Asked {queryset.count()} record(s) to stop.", messages.SUCCESS)

    @admin.action(description="Start again (reserved until the stream is live)")
    def retry_records(self, request, queryset):
        restarted = 0
        for record in queryset.filter(state__in=[JobState.ERROR, JobState.READY]):
            record.reserve()
            jobs.dispatch_if_live(record, record_task())
            restarted += 1
        self.message_user(request, f"Queued {restarted} record(s).", messages.SUCCESS)
