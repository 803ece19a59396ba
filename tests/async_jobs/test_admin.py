"""The admin lists API jobs and shows a job's request without its credentials; the beat prunes and sweeps."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from apps.async_jobs.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("operator", "op@example.com", "operator-password-1"))
    return client


def test_it_lists_jobs_and_hides_credentials(operator):
    job = Job.new("rtsp/startup", {"uri": "rtsp://admin:s3cret@10.0.0.5/main"}, 60)
    listing = operator.get("/admin/async_jobs/job/")
    assert listing.status_code == 200 and "rtsp/startup" in listing.content.decode()
    page = operator.get(f"/admin/async_jobs/job/{job.pk}/change/").content.decode()
    assert "rtsp://admin:***@10.0.0.5/main" in page
    assert "s3cret" not in page


def test_the_beat_prunes_and_sweeps_jobs():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"apps.async_jobs.tasks.prune_finished_jobs", "apps.async_jobs.tasks.cancel_overdue_jobs"} <= tasks
