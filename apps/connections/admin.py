"""Admin list of connected clients (read-only: they come and go with their sockets)."""

from django.contrib import admin

from apps.connections.models import Connection


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ["session_id", "app_key", "client_version", "log_level", "connected_at"]
    search_fields = ["session_id", "app_key"]
    readonly_fields = [field.name for field in Connection._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
