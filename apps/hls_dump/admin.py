"""Admin of HLS dumps: state, folder, progress, with stop / start-again actions."""

from django import forms
from django.contrib import admin

from apps.hls_dump.models import HlsDump
from apps.hls_dump.services import dump_task, stop_dump
from apps.hosting.models import task_id_validator
from apps.jobs.admin import StreamJobAdmin


class HlsDumpForm(forms.ModelForm):
    """The API's rule: the id ends up in file names."""

    class Meta:
        model = HlsDump
        # The admin shows every editable field; these are the ones checked here.
        fields = ["application", "dump_id", "stream_name", "output_path"]

    def clean_dump_id(self):
        value = self.cleaned_data["dump_id"]
        task_id_validator(value)
        return value


@admin.register(HlsDump)
class HlsDumpAdmin(StreamJobAdmin):
    form = HlsDumpForm
    stop = stop_dump
    task = dump_task
    list_display = ["dump_id", "application", "stream_name", "output_path", "state", "dumped_segments", "dumped_bytes"]
    list_filter = ["state", "application__virtual_host", "application"]
    search_fields = ["dump_id", "stream_name", "output_path"]
    readonly_fields = [
        "state", "error", "sequence", "created_at", "started_at", "finished_at", "dumped_segments", "dumped_bytes",
        "celery_task_id", "heartbeat_at",
    ]  # fmt: skip
