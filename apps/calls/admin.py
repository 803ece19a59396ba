"""Admin of SIP calls: status, far end, duration and codec, with hang up / place again actions."""

from django.contrib import admin

from apps.calls.models import Call
from apps.calls.services import call_task, terminate_call
from apps.jobs.admin import StreamJobAdmin


@admin.register(Call)
class CallAdmin(StreamJobAdmin):
    stop = terminate_call
    task = call_task
    list_display = ["call_id", "callee", "status", "far_end", "call_duration", "codec", "stream_name", "state"]
    list_filter = ["status", "state", "application"]
    search_fields = ["call_id", "callee", "far_end", "rtmp_url", "stream_name"]
    exclude = ["sip_password"]
    readonly_fields = [
        "status", "reason", "far_end", "codec", "established_at", "ended_at", "call_duration", "published_bytes",
        "injecting", "inject_source", "state", "error", "sequence", "created_at", "started_at", "finished_at",
        "celery_task_id", "heartbeat_at",
    ]  # fmt: skip

    @admin.display(description="duration")
    def call_duration(self, call: Call) -> str:
        duration = call.duration
        if duration is None:
            return "-"
        seconds = int(duration.total_seconds())
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
