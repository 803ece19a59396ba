"""Admin of push tasks: state, target, counters, with stop / start-again actions."""

from django.contrib import admin

from apps.jobs.admin import StreamJobAdmin
from apps.push.models import Push
from apps.push.services import push_task, stop_push


@admin.register(Push)
class PushAdmin(StreamJobAdmin):
    stop = stop_push
    task = push_task
    list_display = ["push_id", "application", "stream_name", "protocol", "url", "state", "total_sent_bytes"]
    list_filter = ["state", "protocol", "application__virtual_host", "application"]
    search_fields = ["push_id", "stream_name", "url"]
    readonly_fields = [
        "state", "error", "sequence", "created_at", "started_at", "finished_at", "sent_bytes", "sent_time_ms",
        "total_sent_bytes", "total_sent_time_ms", "celery_task_id",
    ]  # fmt: skip
