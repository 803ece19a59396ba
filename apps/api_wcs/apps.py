"""WCS REST API v2 at /rest-api/: Flashphoner Web Call Server's methods over StreamHub's services."""

from django.apps import AppConfig


class ApiWcsConfig(AppConfig):
    name = "apps.api_wcs"
    verbose_name = "WCS REST API"

    def ready(self) -> None:
        from apps.api_wcs import schema  # noqa: F401  (registers the OpenAPI auth extension)
