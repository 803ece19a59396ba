"""WCS calls that name a new stream (pulls, VOD, MPEG-TS listeners) refuse a name the engine would refuse."""

from __future__ import annotations

import pytest

from apps.pull.models import Pull

pytestmark = pytest.mark.django_db
API = "/rest-api"
BAD_NAMES = ["..", "a/b", "../../x", "x" * 5000]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/mpegts/startup", {}),
        ("/pull/rtmp/pull", {"uri": "rtmp://127.0.0.1/live/a"}),
        ("/rtsp/startup", {"uri": "rtsp://127.0.0.1/cam"}),
    ],
)
def test_a_bad_local_stream_name_is_400_and_creates_nothing(wcs, path, body, name):
    response = wcs.post(API + path, {**body, "localStreamName": name})
    assert response.status_code == 400
    assert "invalid stream name" in response.json()["message"] or "255 characters" in response.json()["message"]
    assert not Pull.objects.exists()


def test_a_good_name_is_taken(wcs):
    response = wcs.post(API + "/mpegts/startup", {"localStreamName": "ts.cam-1"})
    assert response.status_code == 200
    assert Pull.objects.get().stream_name == "ts.cam-1"
