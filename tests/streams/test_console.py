"""A live stream's page in the admin: player sources, tracks, viewers and jobs in its state, and the
record and push forms, validated as the OME API validates (errors shown, nothing created)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.engine.models import EngineNode
from apps.hosting.models import Application
from apps.push.models import Push
from apps.recording.models import Record
from apps.streams.models import Stream

pytestmark = pytest.mark.django_db


@pytest.fixture
def stream():
    app = Application.objects.get(name="app")
    node = EngineNode.objects.create(
        node_id="node-a", hostname="a", rtmp_port=1935, media_http_port=3333, last_heartbeat=timezone.now()
    )
    return Stream.objects.create(
        application=app, node=node, name="cam", source_type="Rtmp", total_connections=3,
        connections={"hls": 2, "webrtc": 1}, last_throughput_in=2_000_000,
        input_tracks=[{"id": 0, "kind": "video", "codec": "H264", "width": 640, "height": 360, "bitrate": 900_000}],
    )  # fmt: skip


def test_the_page_offers_three_players_and_the_actions(admin_client, stream):
    response = admin_client.get(f"/admin/streams/stream/{stream.pk}/live/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "http://testserver:3333/app/cam/ts:playlist.m3u8" in html
    assert "http://testserver:3333/app/cam/llhls.m3u8" in html
    assert "http://testserver:3333/app/cam?direction=whep" in html
    for form in ("stop-form", "snapshot-form", "record-form", "push-form"):
        assert f'id="{form}"' in html
    assert "streams/vendor/hls.js/hls.min.js" in html and "uPlot.iife.min.js" in html


def test_the_state_has_tracks_viewers_per_protocol_jobs_and_events(admin_client, stream):
    Record.objects.create(application=stream.application, record_id="r1", stream_name="cam", state="started",
                          started_at=timezone.now())  # fmt: skip
    state = admin_client.get(f"/admin/streams/stream/{stream.pk}/live/state/").json()
    assert state["live"] is True and state["viewers"] == 3
    assert state["connections"] == {"hls": 2, "webrtc": 1}
    assert state["tracks"][0]["codec"] == "H264"
    assert [(job["kind"], job["id"], job["state"]) for job in state["jobs"]] == [("record", "r1", "recording")]
    texts = [event["text"] for event in state["events"]]
    assert "record r1 started" in texts and "published (RTMP)" in texts


def test_a_record_from_the_form_is_created_as_the_api_creates_it(admin_client, stream):
    response = admin_client.post(
        f"/admin/streams/stream/{stream.pk}/live/", {"action": "record", "record_id": "form1", "interval": "60000"}
    )
    assert response.status_code == 302
    record = Record.objects.get(record_id="form1")
    assert (record.stream_name, record.interval_ms, record.application) == ("cam", 60000, stream.application)


@pytest.mark.parametrize(("fields", "error"), [
    ({"record_id": "bad", "file_path": "../escape.mp4"}, "filePath: ../escape.mp4: &#x27;..&#x27; is not allowed"),
    ({"record_id": "bad", "interval": "10"}, "interval: Ensure this value is greater than or equal to 1000."),
])  # fmt: skip
def test_a_bad_record_form_shows_the_apis_error_and_creates_nothing(admin_client, stream, fields, error):
    response = admin_client.post(f"/admin/streams/stream/{stream.pk}/live/", {"action": "record", **fields})
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not Record.objects.exists()


def test_a_duplicate_record_id_is_refused(admin_client, stream):
    Record.objects.create(application=stream.application, record_id="dup", stream_name="cam")
    response = admin_client.post(f"/admin/streams/stream/{stream.pk}/live/", {"action": "record", "record_id": "dup"})
    assert response.status_code == 400
    assert "Duplicate ID already exists: [dup]" in response.content.decode()
    assert Record.objects.count() == 1


def test_a_push_needs_what_the_api_needs(admin_client, stream):
    url = f"/admin/streams/stream/{stream.pk}/live/"
    refused = admin_client.post(url, {"action": "push", "push_id": "p1", "protocol": "rtmp", "url": "rtmp://h/live"})
    assert refused.status_code == 400
    assert "streamKey: This field is required for rtmp." in refused.content.decode()
    assert not Push.objects.exists()

    accepted = admin_client.post(
        url, {"action": "push", "push_id": "p1", "protocol": "rtmp", "url": "rtmp://h/live", "stream_key": "k"}
    )
    assert accepted.status_code == 302
    push = Push.objects.get(push_id="p1")
    assert (push.stream_name, push.url, push.stream_key) == ("cam", "rtmp://h/live", "k")


def test_the_page_is_for_staff_only(client, stream):
    response = client.get(f"/admin/streams/stream/{stream.pk}/live/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
