"""The Celery application: media jobs and control tasks run in `celery -A streamhub worker`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "streamhub.settings")

app = Celery("streamhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
