"""Access control: stream ACL keys (WCS), signed URLs and admission webhooks (OME) for the engine."""

from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "apps.access"
    verbose_name = "Access control"
