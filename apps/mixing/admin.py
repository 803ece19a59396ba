"""Admin of mixers: output, layout, inputs inline, counters; stop / start-again actions."""

from django.contrib import admin

from apps.jobs.admin import StreamJobAdmin
from apps.mixing.models import Mixer, MixerInput
from apps.mixing.services import mixer_task, stop_mixer


class MixerInputInline(admin.TabularInline):
    model = MixerInput
    extra = 0
    fields = ["stream_name", "audio_level", "video_muted", "watermark"]


@admin.register(Mixer)
class MixerAdmin(StreamJobAdmin):
    stop = stop_mixer
    task = mixer_task
    inlines = [MixerInputInline]
    list_display = ["uri", "stream_name", "application", "layout", "state", "inputs_live", "video_frames"]
    list_filter = ["state", "layout", "application"]
    search_fields = ["uri", "stream_name"]
    readonly_fields = [
        "state", "error", "created_at", "started_at", "finished_at", "video_frames", "audio_frames", "inputs_live",
        "celery_task_id", "heartbeat_at",
    ]  # fmt: skip
