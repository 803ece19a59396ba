"""Prometheus metrics of the whole platform at /metrics on the API port (streams, traffic, jobs, queues, nodes)."""

from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "apps.metrics"
    verbose_name = "Metrics"
