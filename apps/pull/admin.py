"""Admin of pull tasks: source URLs, state, counters, with stop / start-again actions."""

from django.contrib import admin

from apps.jobs.admin import StreamJobAdmin
from apps.pull.models import Pull
from apps.pull.services import pull_task, stop_pull


@admin.register(Pull)
class PullAdmin(StreamJobAdmin):
    stop = stop_pull
    task = pull_task
    list_display = ["stream_name", "application", "source_type", "current_url", "state", "received_bytes", "failovers"]
    list_filter = ["state", "source_type", "persistent", "application__virtual_host", "application"]
    search_fields = ["stream_name", "current_url"]
    readonly_fields = [
        "state", "error", "sequence", "created_at", "started_at", "finished_at", "current_url", "received_bytes",
        "failovers", "celery_task_id", "heartbeat_at",
    ]  # fmt: skip
