"""OME "Create Stream (Pull)" without media: the spec's body, validation (400), 404, 409, 401, and
DELETE of a pulled stream ending its pull. Media (201 once live, 502, failover) is in
tests/integration/test_pull.py."""

import pytest

from apps.hosting.models import Application
from apps.jobs.choices import JobState
from apps.pull.models import Pull
from apps.streams.models import Stream

pytestmark = pytest.mark.django_db
STREAMS = "/v1/vhosts/default/apps/app/streams"

# The spec's request body, with a loopback camera.
SPEC_BODY = {
    "name": "new_stream_name",
    "urls": ["rtsp://127.0.0.1:553/app/stream"],
    "properties": {
        "persistent": False,
        "noInputFailoverTimeoutMs": 3000,
        "unusedStreamDeletionTimeoutMs": 60000,
        "ignoreRtcpSRTimestamp": False,
    },
}


@pytest.fixture(autouse=True)
def _short_wait(settings):
    settings.PULL_CREATE_WAIT_SECONDS = 0.2  # no worker here: the pull stays queued


def test_the_spec_body_creates_a_pull(ome):
    response = ome.post(STREAMS, SPEC_BODY)
    assert response.status_code == 201
    assert response.json() == {"message": "Created", "statusCode": 201}
    pull = Pull.objects.get()
    assert (pull.stream_name, pull.urls, pull.source_type, pull.state) == (
        "new_stream_name",
        ["rtsp://127.0.0.1:553/app/stream"],
        "RtspPull",
        JobState.READY,
    )
    assert (pull.persistent, pull.no_input_failover_timeout_ms, pull.unused_stream_deletion_timeout_ms) == (
        False,
        3000,
        60000,
    )


def test_properties_are_optional(ome):
    response = ome.post(STREAMS, {"name": "cam", "urls": ["rtmp://127.0.0.1/live/cam"]})
    assert response.status_code == 201
    pull = Pull.objects.get()
    assert (pull.source_type, pull.persistent, pull.no_input_failover_timeout_ms) == ("RtmpPull", False, 3000)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ([], "Request body must be an object"),
        ({"urls": ["rtsp://127.0.0.1/a"]}, "name"),
        ({"name": "cam"}, "urls"),
        ({"name": "cam", "urls": []}, "urls"),
        ({"name": "cam", "urls": "rtsp://127.0.0.1/a"}, "urls"),
        ({"name": "cam", "urls": ["ovt://127.0.0.1:9000/app/s"]}, "OVT pull is not supported"),
        ({"name": "cam", "urls": ["rtsp://127.0.0.1/a", "rtmp://127.0.0.1/app/b"]}, "same scheme"),
        ({"name": "cam", "urls": ["file:///etc/passwd"]}, "urls"),
        ({"name": "a/b", "urls": ["rtsp://127.0.0.1/a"]}, "name"),
        ({"name": "..", "urls": ["rtsp://127.0.0.1/a"]}, "invalid name"),
        ({"name": "../../x", "urls": ["rtsp://127.0.0.1/a"]}, "invalid name"),
        ({"name": "x" * 5000, "urls": ["rtsp://127.0.0.1/a"]}, "name"),
        ({"name": "cam", "urls": ["rtsp://127.0.0.1/a"], "properties": {"persistent": "maybe"}}, "persistent"),
        ({"name": "cam", "urls": ["rtsp://127.0.0.1/a"], "properties": {"noInputFailoverTimeoutMs": -1}}, "noInput"),
    ],
)
def test_invalid_bodies_are_400_and_create_nothing(ome, body, text):
    response = ome.post(STREAMS, body)
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400
    assert text in response.json()["message"]
    assert not Pull.objects.exists()


def test_unknown_application_is_404(ome):
    response = ome.post("/v1/vhosts/default/apps/non-exists/streams", SPEC_BODY)
    assert response.status_code == 404
    assert response.json() == {
        "statusCode": 404,
        "message": "[HTTP] Could not find the application: [default/non-exists] (404)",
    }


def test_a_name_in_use_is_409(ome):
    assert ome.post(STREAMS, SPEC_BODY).status_code == 201
    again = ome.post(STREAMS, SPEC_BODY)
    assert again.status_code == 409
    assert (
        again.json()["message"]
        == "[HTTP] A stream with the same name already exists: [default/app/new_stream_name] (409)"
    )
    Stream.objects.create(application=Application.objects.get(name="app"), name="published", source_type="Rtmp")
    live = ome.post(STREAMS, {**SPEC_BODY, "name": "published"})
    assert live.status_code == 409
    assert Pull.objects.count() == 1


def test_without_the_token_is_401(anonymous):
    response = anonymous.post(STREAMS, SPEC_BODY, format="json")
    assert response.status_code == 401
    assert response.json()["message"] == "[HTTP] Authorization header is required to call API (401)"
    assert not Pull.objects.exists()


def test_delete_ends_a_pull_that_is_not_live(ome):
    ome.post(STREAMS, {**SPEC_BODY, "properties": {"persistent": True}})
    response = ome.delete(f"{STREAMS}/new_stream_name")
    assert response.status_code == 200
    assert Pull.objects.get().state == JobState.STOPPED
    # Its name is free again.
    assert ome.post(STREAMS, SPEC_BODY).status_code == 201
