"""Admin pieces every media job shares: stop, start-again and delete actions (a running job is never
deleted; its files go only on request), read-only state and counters."""

from django.contrib import admin, messages

from apps.jobs import services as jobs
from apps.jobs.choices import ACTIVE_STATES, JobState


class StreamJobAdmin(admin.ModelAdmin):
    """Subclasses set ``stop`` (the kind's stop service) and ``task`` (its Celery task, as a callable)."""

    actions = ["stop_jobs", "start_jobs_again", "delete_jobs", "delete_jobs_and_files"]
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

    @admin.action(description="Delete the selected finished jobs (keep their files)", permissions=["delete"])
    def delete_jobs(self, request, queryset):
        self._delete(request, queryset, with_files=False)

    @admin.action(description="Delete the selected finished jobs and their files", permissions=["delete"])
    def delete_jobs_and_files(self, request, queryset):
        self._delete(request, queryset, with_files=True)

    def _delete(self, request, queryset, with_files: bool) -> None:
        deleted, removed = 0, []
        for job in queryset:
            try:
                removed += jobs.delete_job(job, with_files=with_files)
                deleted += 1
            except jobs.JobStillActive as refusal:
                self.message_user(request, f"Not deleted: {refusal}.", messages.ERROR)
        if deleted:
            files = f" and {len(removed)} file(s)" if with_files else " (files kept)"
            self.message_user(request, f"Deleted {deleted} job(s){files}.", messages.SUCCESS)

    def get_actions(self, request):
        # Django's own bulk delete would skip the refusal of running jobs: the actions above replace it.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.state in ACTIVE_STATES:
            return False  # the change page offers no delete for a job that may still run
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj) -> None:
        jobs.delete_job(obj)
