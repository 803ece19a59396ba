"""Admin of push tasks: state, target, counters, with stop / start-again actions."""

from django import forms
from django.contrib import admin

from apps.hosting.models import task_id_validator
from apps.jobs.admin import StreamJobAdmin
from apps.push.models import Push
from apps.push.services import push_task, stop_push
from apps.security.outbound import check_outbound_url
from media_engine.jobs.push import validate_push_target


class PushForm(forms.ModelForm):
    """The API's rules: the id is a file name, the target fits the protocol and the outbound policy."""

    class Meta:
        model = Push
        # The admin shows every editable field; these are the ones checked here.
        fields = ["application", "push_id", "stream_name", "protocol", "url", "stream_key"]

    def clean_push_id(self):
        value = self.cleaned_data["push_id"]
        task_id_validator(value)
        return value

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("protocol") and cleaned.get("url"):
            try:
                cleaned["url"] = validate_push_target(cleaned["protocol"], cleaned["url"])
                check_outbound_url(cleaned["url"])
            except ValueError as error:
                self.add_error("url", str(error))
        return cleaned


@admin.register(Push)
class PushAdmin(StreamJobAdmin):
    form = PushForm
    stop = stop_push
    task = push_task
    list_display = ["push_id", "application", "stream_name", "protocol", "url", "state", "total_sent_bytes"]
    list_filter = ["state", "protocol", "application__virtual_host", "application"]
    search_fields = ["push_id", "stream_name", "url"]
    readonly_fields = [
        "state", "error", "sequence", "created_at", "started_at", "finished_at", "sent_bytes", "sent_time_ms",
        "total_sent_bytes", "total_sent_time_ms", "celery_task_id",
    ]  # fmt: skip
