"""Read-only admin of live (and ended) streams: state, tracks, viewers and traffic, and each stream's
own page (apps.dashboard.console): player, numbers, events and actions."""

from django.contrib import admin
from django.urls import path, reverse
from django.utils.html import format_html

from apps.dashboard import console
from apps.streams.models import Stream


@admin.register(Stream)
class StreamAdmin(admin.ModelAdmin):
    list_display = [
        "name", "application", "state", "source_type", "viewers", "bitrate_in", "node", "created_at", "play_link",
        "page_link",
    ]  # fmt: skip
    list_filter = ["state", "source_type", "application__virtual_host", "application", "node"]
    search_fields = ["name", "application__name", "remote_address"]
    list_select_related = ["application__virtual_host", "node"]
    date_hierarchy = "created_at"

    def get_urls(self):
        pages = [
            path("<int:pk>/live/", self.admin_site.admin_view(console.stream_page), name="streams_stream_live"),
            path(
                "<int:pk>/live/state/",
                self.admin_site.admin_view(console.stream_page_state),
                name="streams_stream_live_state",
            ),
        ]
        return pages + super().get_urls()

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="viewers")
    def viewers(self, stream: Stream) -> int:
        return stream.total_connections

    @admin.display(description="bitrate in")
    def bitrate_in(self, stream: Stream) -> str:
        return f"{stream.last_throughput_in / 1_000_000:.2f} Mb/s" if stream.is_live else "-"

    @admin.display(description="play")
    def play_link(self, stream: Stream) -> str:
        if not stream.is_live:
            return "-"
        return format_html('<a href="{}">HLS player</a>', reverse("stream-play", args=[stream.pk]))

    @admin.display(description="console")
    def page_link(self, stream: Stream) -> str:
        url = reverse("admin:streams_stream_live", args=[stream.pk])
        return format_html('<a class="stream-page" href="{}">stream page</a>', url)
