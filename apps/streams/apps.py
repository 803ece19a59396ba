"""Live streams: one row per publish session, its tracks and traffic counters, and its events."""

from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "apps.streams"
    verbose_name = "Live streams"
