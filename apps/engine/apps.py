"""Engine nodes: each `runengine` process registers, heartbeats and takes commands from the API."""

from django.apps import AppConfig


class EngineConfig(AppConfig):
    name = "apps.engine"
    verbose_name = "Engine nodes"
