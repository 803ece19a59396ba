"""The admin of multiple streams recorders: listed with members and files; stop and start again."""

import pytest
from django.utils import timezone

from apps.hosting.models import Application
from apps.multi_recorder.models import MultiRecorder, MultiRecorderFile

pytestmark = pytest.mark.django_db
URL = "/admin/multi_recorder/multirecorder/"


@pytest.fixture
def recorder() -> MultiRecorder:
    app = Application.objects.get(name="app")
    return MultiRecorder.objects.create(
        application=app, uri="multi-recorder://room", stream_name="room", members=["866a9910-0000", "9f1e2530-0000"]
    )


def test_recorders_are_listed_with_their_files(admin_client, recorder):
    MultiRecorderFile.objects.create(
        recorder=recorder, sequence=0, path="/media/multi-recorder/multi-recorder___room.mp4",
        members=recorder.members, started_at=timezone.now(), bytes=1234,
    )  # fmt: skip
    listing = admin_client.get(URL)
    assert listing.status_code == 200 and b"multi-recorder://room" in listing.content
    page = admin_client.get(f"{URL}{recorder.pk}/change/")
    assert page.status_code == 200
    assert b"multi-recorder___room.mp4" in page.content and b"9f1e2530-0000" in page.content


def test_it_cannot_be_added_by_hand(admin_client):
    assert admin_client.get(f"{URL}add/").status_code == 403


def test_stop_then_start_again(admin_client, recorder):
    admin_client.post(URL, {"action": "stop_jobs", "_selected_action": [recorder.pk]}, follow=True)
    recorder.refresh_from_db()
    assert recorder.state == "stopped"
    assert recorder.reserve() and recorder.claim("a worker's task")  # run again by a worker, which fails
    assert recorder.mark_error("worker gone")
    admin_client.post(URL, {"action": "start_jobs_again", "_selected_action": [recorder.pk]}, follow=True)
    recorder.refresh_from_db()
    assert (recorder.state, recorder.error) == ("ready", "")
