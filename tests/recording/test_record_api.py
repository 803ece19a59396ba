"""OME :startRecord / :stopRecord / :records without media: validation, reserved state, paths, 404/409."""

import pytest

from apps.recording.models import Record

pytestmark = pytest.mark.django_db
APP = "/v1/vhosts/default/apps/app"

# The three request bodies of the spec (single file, interval, schedule).
SINGLE = {"id": "single", "stream": {"name": "stream", "variantNames": []}}
INTERVAL = {"id": "split", "stream": {"name": "stream"}, "interval": 60000, "segmentationRule": "discontinuity"}
SCHEDULE = {"id": "hourly", "stream": {"name": "stream"}, "schedule": "0 */1 *", "segmentationRule": "continuity"}


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.mark.parametrize("body", [SINGLE, INTERVAL, SCHEDULE], ids=["single", "interval", "schedule"])
def test_a_record_for_a_stream_not_live_is_reserved(ome, body):
    response = ome.post(f"{APP}:startRecord", body)
    assert response.status_code == 200
    envelope = response.json()
    assert envelope["statusCode"] == 200 and envelope["message"] == "OK"
    record = envelope["response"]
    assert record["id"] == body["id"] and record["state"] == "ready"
    assert (record["vhost"], record["app"]) == ("default", "app")
    assert record["stream"] == {"name": "stream", "trackIds": [], "variantNames": []}
    assert record["segmentationRule"] == body.get("segmentationRule", "discontinuity")
    assert record.get("interval") == body.get("interval") and record.get("schedule") == body.get("schedule")
    for field in ("createdTime", "startTime", "finishTime", "recordBytes", "recordTime", "totalRecordBytes",
                  "totalRecordTime", "sequence", "filePath", "infoPath"):  # fmt: skip
        assert field in record
    assert Record.objects.get(record_id=body["id"]).state == "ready"


def test_interval_and_schedule_together_are_refused(ome):
    response = ome.post(f"{APP}:startRecord", {**INTERVAL, "schedule": "0 */1 *"})
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "message": "[HTTP] interval and schedule cannot be used together (400)",
    }
    assert not Record.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"stream": {"name": "s"}}, "[HTTP] id: This field is required. (400)"),
        ({"id": "x"}, "[HTTP] stream: This field is required. (400)"),
        ({"id": "x", "stream": {"name": "s"}, "schedule": "every hour"}, None),
        ({"id": "x", "stream": {"name": "s"}, "segmentationRule": "sometimes"}, None),
        ({"id": "x", "stream": {"name": "s"}, "interval": 10}, None),
    ],
)
def test_bad_bodies_are_400(ome, body, message):
    response = ome.post(f"{APP}:startRecord", body)
    assert response.status_code == 400
    if message:
        assert response.json()["message"] == message
    assert not Record.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        "../escape.mp4",
        "/etc/cron.d/evil.mp4",
        "file:///tmp/x.mp4",
        "a/${Stream}/../../../x.mp4",
        "${Nope}.mp4",
        "recording.exe",
    ],  # fmt: skip
)
def test_paths_never_leave_the_media_root(ome, path):
    response = ome.post(f"{APP}:startRecord", {**SINGLE, "filePath": path})
    assert response.status_code == 400
    assert response.json()["message"].startswith("[HTTP] filePath: ")
    info = ome.post(f"{APP}:startRecord", {**SINGLE, "infoPath": path.replace(".mp4", ".xml")})
    assert info.status_code == 400
    assert not Record.objects.exists()


def test_absolute_paths_inside_the_media_root_are_fine(ome, media_root):
    body = {**SINGLE, "filePath": f"{media_root}/rec/${{Stream}}_${{Sequence}}.ts", "infoPath": "rec/info.xml"}
    response = ome.post(f"{APP}:startRecord", body)
    assert response.status_code == 200
    assert response.json()["response"]["filePath"] == body["filePath"]


def test_a_duplicate_active_id_is_409(ome):
    ome.post(f"{APP}:startRecord", SINGLE)
    response = ome.post(f"{APP}:startRecord", SINGLE)
    assert response.status_code == 409
    assert response.json() == {"statusCode": 409, "message": "[HTTP] Duplicate ID already exists: [single] (409)"}
    assert Record.objects.count() == 1


def test_stop_and_list(ome):
    ome.post(f"{APP}:startRecord", SINGLE)
    ome.post(f"{APP}:startRecord", INTERVAL)
    records = ome.post(f"{APP}:records").json()
    assert records["statusCode"] == 200 and [r["id"] for r in records["response"]] == ["single", "split"]
    assert [r["id"] for r in ome.post(f"{APP}:records", {"id": "split"}).json()["response"]] == ["split"]
    assert ome.post(f"{APP}:records", {"id": "none"}).json()["response"] == []

    response = ome.post(f"{APP}:stopRecord", {"id": "single"})
    assert response.status_code == 200
    assert response.json() == {"statusCode": 200, "message": "OK"}
    stopped = ome.post(f"{APP}:records", {"id": "single"}).json()["response"][0]
    assert stopped["state"] == "stopped" and stopped["finishTime"] != "1970-01-01T00:00:00.000+00:00"
    # A stopped id can be used again.
    assert ome.post(f"{APP}:startRecord", SINGLE).status_code == 200


def test_stop_of_an_unknown_record_is_404(ome):
    response = ome.post(f"{APP}:stopRecord", {"id": "nope"})
    assert response.status_code == 404
    assert response.json()["message"] == "[HTTP] Could not find the record: [default/app/nope] (404)"
    assert ome.post(f"{APP}:stopRecord", {}).status_code == 400


def test_unknown_app_is_404(ome):
    response = ome.post("/v1/vhosts/default/apps/app1:startRecord", SINGLE)
    assert response.status_code == 404
    assert response.json()["message"] == "[HTTP] Could not find the application: [default/app1] (404)"
