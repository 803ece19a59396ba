"""Admin of push tasks: state, target, counters, with start/stop actions."""

from django.contrib import admin, messages

from apps.jobs import services as jobs
from apps.jobs.choices import JobState
from apps.push.models import Push
from apps.push.services import push_task, stop_push


@admin.register(Push)
class PushAdmin(admin.ModelAdmin):
    list_display = ["push_id", "application", "stream_name", "protocol", "url", "state", "total_sent_bytes"]
    list_filter = ["state", "protocol", "application__virtual_host", "application"]
    search_fields = ["push_id", "stream_name", "url"]
    list_select_related = ["application__virtual_host"]
    actions = ["stop_pushes", "retry_pushes"]
    readonly_fields = [
        "state", "error", "sequence", "created_at", "started_at", "finished_at", "sent_bytes", "sent_time_ms",
        "total_sent_bytes", "total_sent_time_ms", "celery_task_id",
    ]  # fmt: skip

    @admin.action(description="Stop the selected pushes")
    def stop_pushes(self, request, queryset):
        for push in queryset:
            stop_push(push)
        self.message_user(request, f"Asked {queryset.count()} push(es) to stop.", messages.SUCCESS)

    @admin.action(description="Start again (reserved until the stream is live)")
    def retry_pushes(self, request, queryset):
        restarted = 0
        for push in queryset.filter(state__in=[JobState.ERROR, JobState.READY]):
            push.reserve()
            jobs.dispatch_if_live(push, push_task())
            restarted += 1
        self.message_user(request, f"Queued {restarted} push(es).", messages.SUCCESS)
