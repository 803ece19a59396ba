"""Asynchronous jobs: long API operations (a VOD or RTSP pull starting, a push connecting) run by a
Celery worker as a Job row whose completion the API server awaits (WCS REST API v3)."""

from django.apps import AppConfig


class AsyncJobsConfig(AppConfig):
    name = "apps.async_jobs"
    verbose_name = "API jobs"
