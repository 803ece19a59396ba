"""Admin of API jobs: what each long call asked, how it went, when; cancel the unfinished ones."""

from django.contrib import admin, messages

from apps.async_jobs.models import Job
from apps.async_jobs.services import cancel_job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "method", "state", "error_status", "created_at", "started_at", "finished_at"]
    list_filter = ["state", "method"]
    search_fields = ["id", "method"]
    date_hierarchy = "created_at"
    actions = ["cancel_jobs"]
    # The stored request may hold credentials: the admin shows it redacted, like the API.
    fields = [
        "id", "method", "state", "shown_request", "result", "shown_error", "error_status", "timeout_seconds",
        "deadline", "watch", "created_at", "started_at", "finished_at",
    ]  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="request")
    def shown_request(self, job: Job):
        return job.public_request

    @admin.display(description="error")
    def shown_error(self, job: Job) -> str:
        return job.public_error

    @admin.action(description="Cancel the selected jobs (stops what they started)")
    def cancel_jobs(self, request, queryset):
        cancelled = sum(cancel_job(job, "Cancelled from the admin") for job in queryset)
        self.message_user(request, f"Cancelled {cancelled} job(s).", messages.SUCCESS)
