"""Admin pieces every media job shares: stop and start-again actions, read-only state and counters."""

from django.contrib import admin, messages

from apps.jobs import services as jobs
from apps.jobs.choices import JobState


class StreamJobAdmin(admin.ModelAdmin):
    """Subclasses set ``stop`` (the kind's stop service) and ``task`` (its Celery task, as a callable)."""

    actions = ["stop_jobs", "start_jobs_again"]
    list_select_related = ["application__virtual_host"]
    stop = None
    task = None

    @admin.action(description="Stop the selected jobs")
    def stop_jobs(self, request, queryset):
        for job in queryset:
            type(self).stop(job)
        self.message_user(request, f"Asked {queryset.count()} job(s) to stop.", messages.SUCCESS)

    @admin.action(description="Start again (reserved until the stream is live)")
    def start_jobs_again(self, request, queryset):
        restarted = 0
        for job in queryset.filter(state__in=[JobState.ERROR, JobState.READY]):
            job.reserve()
            jobs.dispatch_if_live(job, type(self).task())
            restarted += 1
        self.message_user(request, f"Queued {restarted} job(s).", messages.SUCCESS)
