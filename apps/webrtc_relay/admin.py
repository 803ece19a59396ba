"""WebRTC relays in the admin: read-only, since the API starts and ends them."""

from django.contrib import admin

from apps.webrtc_relay.models import WebRtcRelay


@admin.register(WebRtcRelay)
class WebRtcRelayAdmin(admin.ModelAdmin):
    list_display = ["relay_id", "direction", "local_stream_name", "uri", "status", "node", "updated_at"]
    list_filter = ["direction", "status"]
    readonly_fields = [field.name for field in WebRtcRelay._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
