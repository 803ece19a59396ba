"""Hosting: virtual hosts, their applications and the applications' output profiles."""

from django.apps import AppConfig


class HostingConfig(AppConfig):
    name = "apps.hosting"
    verbose_name = "Hosting"
