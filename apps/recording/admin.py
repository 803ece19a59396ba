"""Admin of record tasks: state, counters and files, with stop / start-again / delete actions, and
the recordings pages (apps.recording.views): browse, play and download the files records wrote."""

from django import forms
from django.contrib import admin
from django.urls import path, reverse
from django.utils.html import format_html

from apps.hosting.models import task_id_validator
from apps.jobs.admin import StreamJobAdmin
from apps.recording import views
from apps.recording.models import Record, RecordFile
from apps.recording.services import record_task, stop_record


class RecordFileInline(admin.TabularInline):
    model = RecordFile
    extra = 0
    can_delete = False
    fields = ["sequence", "path", "started_at", "finished_at", "bytes", "duration_ms"]
    readonly_fields = fields


class RecordForm(forms.ModelForm):
    """The API's rule: the id ends up in file names."""

    class Meta:
        model = Record
        # The admin shows every editable field; these are the ones checked here.
        fields = ["application", "record_id", "stream_name"]

    def clean_record_id(self):
        value = self.cleaned_data["record_id"]
        task_id_validator(value)
        return value


@admin.register(Record)
class RecordAdmin(StreamJobAdmin):
    form = RecordForm
    stop = stop_record
    task = record_task
    list_display = [
        "record_id", "application", "stream_name", "record_state", "sequence", "total_record_bytes", "created_at",
        "recordings",
    ]  # fmt: skip
    list_filter = ["state", "application__virtual_host", "application"]
    search_fields = ["record_id", "stream_name", "file_path"]
    inlines = [RecordFileInline]
    exclude = ["state"]  # shown read-only, in OME's words, as record_state

    def get_urls(self):
        pages = [
            ("files/", views.recording_files, "recording_files"),
            ("files/<int:pk>/", views.recording_file, "recording_file"),
            ("files/<int:pk>/play/", views.recording_player, "recording_player"),
            ("files/<int:pk>/playlist.m3u8", views.recording_playlist, "recording_playlist"),
        ]
        own = [path(route, self.admin_site.admin_view(view), name=name) for route, view, name in pages]
        return own + super().get_urls()

    @admin.display(description="files")
    def recordings(self, record: Record) -> str:
        return format_html('<a href="{}?record={}">recordings</a>', reverse("admin:recording_files"), record.pk)

    @admin.display(description="state", ordering="state")
    def record_state(self, record: Record) -> str:
        return record.record_state  # OME's words: "recording" while it runs

    readonly_fields = [
        "record_state", "error", "sequence", "created_at", "started_at", "finished_at", "record_bytes",
        "record_time_ms", "total_record_bytes", "total_record_time_ms", "celery_task_id",
    ]  # fmt: skip
