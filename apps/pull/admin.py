"""Admin of pull tasks: source URLs, state, counters, with stop / start-again actions."""

from django import forms
from django.contrib import admin

from apps.jobs.admin import StreamJobAdmin
from apps.pull.models import Pull
from apps.pull.services import pull_task, stop_pull
from apps.security.outbound import check_outbound_url
from media_engine.jobs.pull import SOURCE_TYPES, validate_pull_urls

REMOTE_SOURCE_TYPES = {SOURCE_TYPES[group] for group in ("rtsp", "rtmp", "http")}


class PullForm(forms.ModelForm):
    """The API's rules for pulls from other servers: URLs of one scheme, allowed by the outbound policy."""

    class Meta:
        model = Pull
        # The admin shows every editable field; these are the ones checked here.
        fields = ["application", "stream_name", "source_type", "urls"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("source_type") in REMOTE_SOURCE_TYPES and "urls" in cleaned:
            try:
                cleaned["urls"] = validate_pull_urls(cleaned["urls"])[1]
                for url in cleaned["urls"]:
                    check_outbound_url(url)
            except ValueError as error:
                self.add_error("urls", str(error))
        return cleaned


@admin.register(Pull)
class PullAdmin(StreamJobAdmin):
    form = PullForm
    stop = stop_pull
    task = pull_task
    list_display = ["stream_name", "application", "source_type", "current_url", "state", "received_bytes", "failovers"]
    list_filter = ["state", "source_type", "persistent", "application__virtual_host", "application"]
    search_fields = ["stream_name", "current_url"]
    readonly_fields = [
        "state", "error", "sequence", "created_at", "started_at", "finished_at", "current_url", "received_bytes",
        "failovers", "celery_task_id", "heartbeat_at",
    ]  # fmt: skip
