"""Admin of engine nodes: where each listens and whether it is alive."""

from django.contrib import admin

from apps.engine.models import EngineNode
from apps.streams.choices import StreamState


@admin.register(EngineNode)
class EngineNodeAdmin(admin.ModelAdmin):
    list_display = [
        "node_id", "role", "processing_state", "hostname", "rtmp_port", "media_http_port", "alive", "last_heartbeat",
        "live_streams", "load_streams", "load_viewers",
    ]  # fmt: skip
    list_filter = ["role", "processing_state"]
    readonly_fields = [
        "node_id", "role", "hostname", "rtmp_port", "media_http_port", "started_at", "last_heartbeat", "load_streams",
        "load_viewers",
    ]  # fmt: skip

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(boolean=True, description="alive")
    def alive(self, node: EngineNode) -> bool:
        return node.is_alive

    @admin.display(description="live streams")
    def live_streams(self, node: EngineNode) -> int:
        return node.streams.filter(state=StreamState.LIVE).count()
