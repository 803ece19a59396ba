"""OvenMediaEngine REST API v1 dialect at /v1/: thin views over the hosting (and later streams) apps."""

from django.apps import AppConfig


class ApiOmeConfig(AppConfig):
    name = "apps.api_ome"
    verbose_name = "OME API v1"

    def ready(self) -> None:
        from apps.api_ome import schema  # noqa: F401  (registers the OpenAPI auth extension)
