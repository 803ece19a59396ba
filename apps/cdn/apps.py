"""CDN: the WCS view of StreamHub's engine nodes (states, routes) and WCS's CDN transcoding
profiles (/cdn/profile/*), kept as rows the admin shows."""

from django.apps import AppConfig


class CdnConfig(AppConfig):
    name = "apps.cdn"
    verbose_name = "CDN"
