"""The job admins: records and pushes are listed, and stop / start-again actions change their state."""

import pytest

from apps.hosting.models import Application
from apps.push.models import Push
from apps.recording.models import Record

pytestmark = pytest.mark.django_db


@pytest.fixture
def app():
    return Application.objects.get(name="app")


def test_records_and_pushes_are_listed(admin_client, app):
    Record.objects.create(application=app, record_id="r1", stream_name="cam")
    Push.objects.create(application=app, push_id="p1", stream_name="cam", protocol="rtmp", url="rtmp://h/app")
    assert b"r1" in admin_client.get("/admin/recording/record/").content
    assert b"rtmp://h/app" in admin_client.get("/admin/push/push/").content


@pytest.mark.parametrize(("model", "url", "fields"), [
    (Record, "/admin/recording/record/", {"record_id": "r1"}),
    (Push, "/admin/push/push/", {"push_id": "p1", "protocol": "rtmp", "url": "rtmp://h/app"}),
])  # fmt: skip
def test_stop_then_start_again(admin_client, app, model, url, fields):
    job = model.objects.create(application=app, stream_name="cam", **fields)
    response = admin_client.post(url, {"action": "stop_jobs", "_selected_action": [job.pk]}, follow=True)
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.state == "stopped"

    assert job.reserve() and job.claim("a worker's task")  # run again by a worker, which fails
    assert job.mark_error("target gone")
    admin_client.post(url, {"action": "start_jobs_again", "_selected_action": [job.pk]}, follow=True)
    job.refresh_from_db()
    assert (job.state, job.error) == ("ready", "")  # reserved: the stream is not live
