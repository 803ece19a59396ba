"""WCS /multipleRecorder/* without media: statuses, error texts and shapes as WCS's table and docs
give them, and a refused call changes nothing. The recording itself is in
tests/integration/test_wcs_multirecorder.py."""

from __future__ import annotations

import pytest

from apps.engine.models import EngineNode
from apps.hosting.models import Application
from apps.jobs.choices import JobState
from apps.multi_recorder.models import MultiRecorder
from apps.streams.models import Stream

pytestmark = pytest.mark.django_db
API = "/rest-api/multipleRecorder"
URI = "multi-recorder://test-record"


@pytest.fixture
def streams() -> list[Stream]:
    app = Application.objects.get(virtual_host__name="default", name="app")
    node = EngineNode.objects.create(node_id="node-a", hostname="a", rtmp_port=1935, media_http_port=3333)
    return [Stream.objects.create(application=app, name=name, source_type="Rtmp", node=node) for name in ("s1", "s2")]


def session(stream: Stream) -> str:
    return str(stream.media_session_id)


def snapshot() -> list[tuple]:
    return list(MultiRecorder.objects.order_by("pk").values_list("uri", "state", "members"))


def refused(response, status: int, message: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert (body["status"], body["message"]) == (status, message)


def test_it_records_added_streams_until_terminated(wcs, streams):
    assert wcs.post(f"{API}/startup", {"uri": URI}).status_code == 200
    for stream in streams:
        response = wcs.post(f"{API}/add", {"uri": URI, "mediaSessionId": session(stream)})
        assert response.status_code == 200 and response.content == b""

    response = wcs.post(f"{API}/find_all", {})
    assert response.status_code == 200
    assert response.json() == [
        {"mediaSessionsId": [session(s) for s in streams], "uri": URI, "fileName": "multi-recorder___test-record.mp4"}
    ]

    assert wcs.post(f"{API}/remove", {"uri": URI, "mediaSessionId": session(streams[0])}).status_code == 200
    assert wcs.post(f"{API}/find_all").json()[0]["mediaSessionsId"] == [session(streams[1])]

    assert wcs.post(f"{API}/terminate", {"uri": URI}).status_code == 200
    recorder = MultiRecorder.objects.get()
    assert recorder.state == JobState.STOPPED  # no worker ran it in this test: stopped at once
    refused(wcs.post(f"{API}/find_all"), 404, "Not found")


def test_startup_refuses_a_second_recorder_with_the_uri(wcs):
    wcs.post(f"{API}/startup", {"uri": URI})
    before = snapshot()
    refused(wcs.post(f"{API}/startup", {"uri": URI}), 409, "Conflict")
    assert snapshot() == before


@pytest.mark.parametrize("uri", ["test-record", "multi-recorder://../../etc/passwd", "multi-recorder://a/b", "x://y"])
def test_startup_refuses_a_malformed_uri(wcs, uri):
    response = wcs.post(f"{API}/startup", {"uri": uri})
    assert response.status_code == 400
    assert response.json()["message"].startswith("Bad request: uri: ")
    assert snapshot() == []


def test_startup_needs_a_uri(wcs):
    refused(wcs.post(f"{API}/startup", {}), 400, "Bad request: uri: This field is required.")


def test_add_refusals(wcs, streams):
    wcs.post(f"{API}/startup", {"uri": URI})
    wcs.post(f"{API}/add", {"uri": URI, "mediaSessionId": session(streams[0])})
    before = snapshot()
    ended = streams[1]
    ended.end()
    cases = [
        ({"uri": "multi-recorder://other", "mediaSessionId": session(streams[0])}, 404, "Not found"),
        ({"uri": URI, "mediaSessionId": "no-such-session"}, 404, "Not found"),
        ({"uri": URI, "mediaSessionId": session(ended)}, 404, "Not found"),  # not live
        ({"uri": URI, "mediaSessionId": session(streams[0])}, 409, "Conflict"),  # a member already
    ]
    for body, status, message in cases:
        refused(wcs.post(f"{API}/add", body), status, message)
    assert snapshot() == before


def test_remove_refusals(wcs, streams):
    wcs.post(f"{API}/startup", {"uri": URI})
    wcs.post(f"{API}/add", {"uri": URI, "mediaSessionId": session(streams[0])})
    before = snapshot()
    refused(wcs.post(f"{API}/remove", {"uri": URI, "mediaSessionId": session(streams[1])}), 404, "Not found")
    body = {"uri": "multi-recorder://other", "mediaSessionId": session(streams[0])}
    refused(wcs.post(f"{API}/remove", body), 404, "Not found")
    assert snapshot() == before


def test_terminate_refusals(wcs):
    wcs.post(f"{API}/startup", {"uri": URI})
    before = snapshot()
    refused(wcs.post(f"{API}/terminate", {"uri": "test-record"}), 409, "Bad uri format")
    refused(wcs.post(f"{API}/terminate", {"uri": "multi-recorder://other"}), 404, "Not found")
    assert snapshot() == before


def test_find_all_of_nothing(wcs):
    refused(wcs.post(f"{API}/find_all"), 404, "Not found")


def test_the_methods_are_in_the_openapi_yaml(wcs):
    text = wcs.get("/rest-api/openapi_spec").content.decode()
    for name in ("startup", "add", "find_all", "remove", "terminate"):
        assert f"/rest-api/multipleRecorder/{name}:" in text
    assert "mediaSessionsId" in text
