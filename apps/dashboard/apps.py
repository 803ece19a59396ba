"""The admin's live dashboard: engine nodes, live streams with viewers, bitrates and throughput charts,
kept up to date over the events WebSocket by the engine's heartbeats."""

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "apps.dashboard"
    verbose_name = "Live dashboard"

    def ready(self) -> None:
        from apps.dashboard import signals  # noqa: F401  (engine heartbeats become "stats" events)
