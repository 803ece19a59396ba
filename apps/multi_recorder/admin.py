"""Admin of multiple streams recorders: members, state and files, with stop / start-again actions."""

from django.contrib import admin

from apps.jobs.admin import StreamJobAdmin
from apps.multi_recorder.models import MultiRecorder, MultiRecorderFile
from apps.multi_recorder.services import multi_record_task, stop_multi_recorder


class MultiRecorderFileInline(admin.TabularInline):
    model = MultiRecorderFile
    extra = 0
    can_delete = False
    fields = ["sequence", "path", "members", "started_at", "finished_at", "bytes", "duration_ms"]
    readonly_fields = fields


@admin.register(MultiRecorder)
class MultiRecorderAdmin(StreamJobAdmin):
    stop = stop_multi_recorder
    task = multi_record_task
    list_display = ["uri", "application", "state", "member_count", "current_file", "created_at"]
    list_filter = ["state", "application"]
    search_fields = ["uri", "members"]
    fields = ["uri", "application", "members", "state", "error", "current_file", "sequence", "created_at",
              "started_at", "finished_at", "celery_task_id"]  # fmt: skip
    readonly_fields = fields
    inlines = [MultiRecorderFileInline]

    @admin.display(description="members")
    def member_count(self, recorder: MultiRecorder) -> int:
        return len(recorder.members)

    def has_add_permission(self, request) -> bool:
        return False  # made by the WCS API (/multipleRecorder/startup)
