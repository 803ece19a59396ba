"""The admin lists transcodes with their renditions and CPU cost, and stops them."""

from __future__ import annotations

import pytest

from apps.hosting.models import Application, OutputProfile
from apps.jobs.choices import JobState
from apps.transcoding.models import Transcode

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/transcoding/transcode/"


@pytest.fixture
def running() -> Transcode:
    application = Application.objects.get(virtual_host__name="default", name="app")
    profile = OutputProfile.objects.create(
        application=application, name="abr", output_stream_name="${OriginStreamName}",
        encodes={"videos": [{"name": "v360", "codec": "h264", "bitrate": 300000, "height": 360}]}, position=1,
    )  # fmt: skip
    return Transcode.objects.create(
        application=application, stream_name="cam", profile=profile, state=JobState.STARTED,
        rendition_streams=["cam_v360"], cpu_percent=23.4, cpu_seconds=12.0,
    )  # fmt: skip


def test_the_changelist_shows_renditions_and_cpu(admin_client, running):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    page = response.content.decode()
    assert "cam_v360" in page and "23.4" in page and "abr" in page


def test_the_stop_action_stops_a_transcode(admin_client, running):
    response = admin_client.post(CHANGELIST, {"action": "stop_jobs", "_selected_action": [running.pk]})
    assert response.status_code == 302
    running.refresh_from_db()
    assert running.state == JobState.STOPPING
