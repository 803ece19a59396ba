"""Security policies of the platform: where outgoing connections may go (SSRF guard), warnings about
APIs left open at start, and the limits on API request bodies."""

from django.apps import AppConfig


class SecurityConfig(AppConfig):
    name = "apps.security"
    verbose_name = "Security"

    def ready(self) -> None:
        from apps.security.outbound import install

        # Every process (API server, engine node, Celery worker) checks outgoing URLs with the settings' allow-list.
        install()
