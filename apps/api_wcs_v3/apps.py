"""WCS REST API v3 at /rest-api/v3/: every v2 method, the long ones run as asynchronous jobs."""

from django.apps import AppConfig


class ApiWcsV3Config(AppConfig):
    name = "apps.api_wcs_v3"
    verbose_name = "WCS REST API v3"

    def ready(self) -> None:
        from apps.api_wcs_v3 import events, operations

        operations.register_long_operations()
        events.connect()
