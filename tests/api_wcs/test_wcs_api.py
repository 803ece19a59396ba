"""WCS REST API v2 without media: every routed method of the table answers its status codes and
shapes (finds of nothing are 404 with the table's text, bad bodies 400), CORS, optional Basic
auth, the /mpepts/ spelling, and the OpenAPI YAML at /rest-api/openapi_spec. Media (snapshots,
transponders, VOD, MPEG-TS, RTSP) is in tests/integration/test_wcs.py."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from openapi_spec_validator import validate

from apps.api_wcs.urls import METHODS
from apps.hosting.models import Application
from apps.pull.models import Pull
from apps.push.models import Push
from apps.recording.models import Record
from apps.streams.models import Stream

pytestmark = pytest.mark.django_db
API = "/rest-api"


@pytest.fixture
def live_stream(db) -> Stream:
    tracks = [
        {"id": 0, "kind": "video", "codec": "H264", "width": 1280, "height": 720, "bitrate": 2_000_000},
        {"id": 1, "kind": "audio", "codec": "AAC", "bitrate": 128_000},
    ]
    return Stream.objects.create(
        application=Application.objects.get(name="app"),
        name="stream1",
        source_type="Rtmp",
        remote_address="127.0.0.1:50000",
        input_tracks=tracks,
    )


# (path, body, status, message) for finds of nothing and lookups of what does not exist.
NOTHING = [
    ("/stream/find_all", {}, 404, "Streams not found"),
    ("/stream/find", {"name": "nope"}, 404, "Stream not found"),
    ("/stream/terminate", {"name": "nope"}, 404, "Stream not found"),
    ("/stream/snapshot", {"streamName": "nope"}, 404, "Stream not found"),
    ("/stream/startRecording", {"mediaSessionId": "nope"}, 404, "Stream not found"),
    ("/stream/stopRecording", {"mediaSessionId": "nope"}, 404, "Recorder not found"),
    ("/stream/event/send", {"streamName": "nope", "payload": {"a": 1}}, 404, "Stream not found"),
    ("/recorder/startup", {"mediaSessionId": "nope"}, 404, "Stream not found"),
    ("/recorder/terminate", {"mediaSessionId": "nope"}, 404, "Recorder not found"),
    ("/recorder/find_all", {}, 404, "Recorders not found"),
    ("/push/find", {"streamName": "nope"}, 404, "Transponder not found"),
    ("/push/find_all", {}, 404, "Transponder not found"),
    ("/push/terminate", {"mediaSessionId": "nope"}, 404, "Transponder not found"),
    ("/push/mute", {"mediaSessionId": "nope"}, 404, "Transponder not found"),
    ("/push/unmute", {"mediaSessionId": "nope"}, 404, "Transponder not found"),
    ("/push/sound_on", {"mediaSessionId": "nope", "soundFile": "a.wav"}, 404, "Transponder not found"),
    ("/push/sound_off", {"mediaSessionId": "nope"}, 404, "Transponder not found"),
    ("/pull/rtmp/find_all", {}, 404, "Not found"),
    ("/pull/rtmp/terminate", {"uri": "rtmp://127.0.0.1/live/x"}, 404, "Not found"),
    ("/rtsp/find", {"uri": "rtsp://127.0.0.1/x"}, 404, "RTSP not found"),
    ("/rtsp/find_all", {}, 404, "RTSP not found"),
    ("/rtsp/terminate", {"uri": "rtsp://127.0.0.1/x"}, 404, "RTSP not found"),
    ("/vod/find", {"localStreamName": "x"}, 404, "VODs not found"),
    ("/vod/find_all", {}, 404, "VODs not found"),
    ("/vod/terminate", {"localStreamName": "x"}, 404, "VOD not found"),
    ("/mpegts/find", {"localStreamName": "x"}, 404, "Not found"),
    ("/mpepts/find_all", {}, 404, "Not found"),
    ("/mpepts/terminate", {"localStreamName": "x"}, 404, "Not found"),
    ("/hls/startup", {"name": "nope"}, 404, "Stream not found"),
    ("/hls/find_all", {}, 404, "Not found"),
    ("/hls/subscribers", {"hlsId": "nope"}, 404, "Stream not found"),
    ("/connection/find_all", {}, 404, "No connections found"),
    ("/connection/find", {"appKey": "x"}, 404, "Not found"),
    ("/connection/terminate", {"sessionId": "/1.2.3.4:5/6.7.8.9:10"}, 404, "No such connection"),
    ("/data/send", {"sessionId": "/1.2.3.4:5/6.7.8.9:10", "payload": {}}, 500, "Internal error: no such connection"),
    ("/logger/enable_client_log", {"sessionId": "nope", "logLevel": "DEBUG"}, 404, "Session not found"),
    ("/logger/disable_client_log", {"sessionId": "nope"}, 404, "Session not found"),
    ("/call/find_all", {}, 404, "Call not found"),
    ("/call/find", {"callId": "1"}, 404, "Call not found"),
    ("/call/terminate", {"callId": "1"}, 404, "Call not found"),
    ("/call/send_dtmf", {"callId": "1", "dtmf": "1"}, 404, "Call not found"),
    ("/call/inject_sound", {"callId": "1", "fileName": "a.wav"}, 404, "Call not found"),
    ("/call/inject_stream/startup", {"callId": "1", "streamName": "s"}, 404, "Call not found"),
    ("/call/inject_stream/terminate", {"callId": "1"}, 404, "Call not found"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), NOTHING, ids=[row[0] for row in NOTHING])
def test_methods_answer_the_table_status_when_nothing_matches(wcs, path, body, status, message):
    response = wcs.post(API + path, body)
    assert response.status_code == status
    answer = response.json()
    assert (answer["status"], answer["message"], answer["path"]) == (status, message, API + path)
    assert answer["error"] in ("Not Found", "Internal Server Error")


def test_every_routed_method_refuses_a_body_that_is_not_an_object(wcs):
    for method in METHODS:
        response = wcs.post(f"{API}/{method.route}", [1, 2])
        assert response.status_code == 400, method.route
        assert response.json()["message"] == "Bad request: the body must be a JSON object"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/stream/snapshot", {}, "streamName"),
        ("/stream/startRecording", {}, "mediaSessionId"),
        ("/push/startup", {"rtmpUrl": "rtmp://127.0.0.1/live"}, "streamName"),
        ("/rtsp/startup", {"localStreamName": "cam"}, "uri"),
        ("/rtsp/startup", {"uri": "rtmp://127.0.0.1/live/a"}, "rtmp://127.0.0.1/live/a is not an rtsp"),
        ("/pull/rtmp/pull", {"uri": "rtsp://127.0.0.1/cam"}, "rtsp://127.0.0.1/cam is not an rtmp"),
        ("/vod/startup", {"localStreamName": "v"}, "uri"),
        ("/mpegts/startup", {"localStreamName": "ts", "transport": "sctp"}, "transport"),
        # Found by schemathesis on PostgreSQL: numbers beyond the columns are refused, not a 500.
        ("/mpegts/startup", {"localStreamName": "ts", "timeout": 153650403274679638381921592868850595659}, "timeout"),
        ("/hls/find_all", {"offset": -1}, "offset"),
        ("/logger/enable_client_log", {"sessionId": "s", "logLevel": "LOUD"}, "logLevel"),
        ("/data/send", {"sessionId": "s"}, "payload"),
    ],
)
def test_missing_or_bad_parameters_are_400_naming_the_field(wcs, path, body, field):
    response = wcs.post(API + path, body)
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"Bad request: {field}")


def test_stream_objects_have_the_wcs_fields(wcs, live_stream):
    [stream] = wcs.post(f"{API}/stream/find_all").json()
    assert stream["name"] == "stream1" and stream["mediaSessionId"] == str(live_stream.media_session_id)
    assert (stream["published"], stream["hasVideo"], stream["hasAudio"], stream["status"]) == (
        True, True, True, "PUBLISHING"
    )  # fmt: skip
    assert (stream["videoCodec"], stream["audioCodec"], stream["width"], stream["height"]) == (
        "H264", "mpeg4-generic", 1280, 720
    )  # fmt: skip
    assert stream["sessionId"].startswith("/127.0.0.1:50000/")
    assert {
        "appKey",
        "sdp",
        "record",
        "recordName",
        "bitrate",
        "minBitrate",
        "maxBitrate",
        "quality",
        "history",
    } <= set(stream)
    by_session = wcs.post(f"{API}/stream/find", {"mediaSessionId": stream["mediaSessionId"]}).json()
    assert [s["name"] for s in by_session] == ["stream1"]
    assert wcs.post(f"{API}/stream/find", {"name": "stream1", "published": False}).status_code == 404


def test_a_method_without_parameters_answers_any_object_as_an_empty_one(wcs, live_stream):
    expected = wcs.post(f"{API}/stream/find_all", {}).json()
    for body in ({"name": "other", "published": "maybe"}, {"deep": [{"x": 1}]}):
        response = wcs.post(f"{API}/stream/find_all", body)
        assert (response.status_code, response.json()) == (200, expected)
    assert wcs.get(f"{API}/stream/find_all").json() == expected


def test_find_all_costs_the_same_queries_for_ten_streams_as_for_one(wcs, live_stream, django_assert_max_num_queries):
    """A hot path (issue #19: 500 calls/s): the records of the streams are read in one query, not one per stream."""
    session = str(live_stream.media_session_id)
    assert wcs.post(f"{API}/stream/startRecording", {"mediaSessionId": session}).status_code == 200
    with CaptureQueriesContext(connection) as one:
        [stream] = wcs.post(f"{API}/stream/find_all").json()
    assert stream["record"] is True
    for index in range(2, 11):
        Stream.objects.create(
            application=live_stream.application, name=f"stream{index}", source_type="Rtmp",
            remote_address="127.0.0.1:50000", input_tracks=live_stream.input_tracks,
        )  # fmt: skip
    with django_assert_max_num_queries(len(one)):
        streams = wcs.post(f"{API}/stream/find_all").json()
    assert len(streams) == 10
    assert [s["record"] for s in sorted(streams, key=lambda s: s["name"] != "stream1")] == [True] + [False] * 9


def test_start_and_stop_recording_use_the_record_service(wcs, live_stream):
    session = str(live_stream.media_session_id)
    assert wcs.post(f"{API}/stream/startRecording", {"mediaSessionId": session}).status_code == 200
    record = Record.objects.get()
    assert (record.record_id, record.stream_name, record.state) == (session, "stream1", "ready")
    again = wcs.post(f"{API}/recorder/startup", {"mediaSessionId": session})
    assert again.status_code == 409
    huge = wcs.post(f"{API}/recorder/startup", {"mediaSessionId": session, "config": {"rotation": 10**40}})
    assert huge.status_code == 400 and "config.rotation must be 1..86400 seconds" in huge.json()["message"]
    [recorder] = wcs.post(f"{API}/recorder/find_all").json()
    assert (recorder["mediaSessionId"], recorder["streamName"]) == (session, "stream1")
    assert wcs.post(f"{API}/stream/find", {"name": "stream1"}).json()[0]["record"] is True
    assert wcs.post(f"{API}/stream/stopRecording", {"mediaSessionId": session}).status_code == 200
    assert Record.objects.get().state == "stopped"
    assert wcs.post(f"{API}/recorder/terminate", {"mediaSessionId": session}).status_code == 404


def test_push_startup_validation_conflict_and_terminate(wcs):
    assert wcs.post(f"{API}/push/startup", {"streamName": "s"}).json()["message"] == "Bad request: rtmpUrl is not set"
    bad = wcs.post(f"{API}/push/startup", {"streamName": "s", "rtmpUrl": "http://127.0.0.1/live"})
    assert bad.status_code == 400
    unresolvable = wcs.post(f"{API}/push/startup", {"streamName": "s", "rtmpUrl": "rtmp://no-such-host.invalid/live"})
    assert unresolvable.status_code == 400 and "cannot be resolved" in unresolvable.json()["message"]
    body = {"streamName": "s", "rtmpUrl": "rtmp://127.0.0.1:1935/live/s"}
    created = wcs.post(f"{API}/push/startup", body)
    assert created.status_code == 200
    transponder = created.json()
    assert (transponder["streamName"], transponder["rtmpUrl"], transponder["status"]) == (
        "s", "rtmp://127.0.0.1:1935/live/s", "PENDING"
    )  # fmt: skip
    assert wcs.post(f"{API}/push/startup", body).status_code == 409
    assert [t["mediaSessionId"] for t in wcs.post(f"{API}/push/find", {"streamName": "s"}).json()] == [
        transponder["mediaSessionId"]
    ]
    assert wcs.post(f"{API}/push/terminate", {"mediaSessionId": transponder["mediaSessionId"]}).status_code == 200
    assert Push.objects.get().state == "stopped"
    assert wcs.post(f"{API}/push/find_all").status_code == 404


def test_push_audio_mute_and_sound_change_the_row_the_job_reads(wcs, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.3", str(tmp_path / "beep.wav")],
        check=True, timeout=30,
    )  # fmt: skip
    (tmp_path / "notes.wav").write_text("not audio")
    body = {"streamName": "s", "rtmpUrl": "rtmp://127.0.0.1:1935/live/s"}
    session = wcs.post(f"{API}/push/startup", body).json()["mediaSessionId"]
    push = Push.objects.get()
    assert push.audio_control and not push.audio_muted
    assert wcs.post(f"{API}/push/unmute", {"mediaSessionId": session}).status_code == 409
    assert wcs.post(f"{API}/push/mute", {"mediaSessionId": session}).status_code == 200
    assert wcs.post(f"{API}/push/mute", {"mediaSessionId": session}).json()["message"] == (
        "Conflict: the transponder is muted already"
    )
    assert wcs.post(f"{API}/push/find_all").json()[0]["muted"] is True
    for name, status, text in [
        ("missing.wav", 404, "No such file"),
        ("../etc/passwd", 404, "No such file"),
        ("/etc/hostname", 404, "No such file"),
        ("notes.wav", 400, "Bad request: notes.wav: the file is not readable audio"),
    ]:
        refused = wcs.post(f"{API}/push/sound_on", {"mediaSessionId": session, "soundFile": name})
        assert refused.status_code == status and refused.json()["message"].startswith(text), refused.text
    assert Push.objects.get().sound_file == ""
    on = wcs.post(f"{API}/push/sound_on", {"mediaSessionId": session, "soundFile": "beep.wav", "loop": True})
    assert on.status_code == 200, on.text
    push = Push.objects.get()
    assert (push.sound_file, push.sound_loop, push.sound_serial) == ("beep.wav", True, 1)
    assert push.audio_state().sound_file == str(tmp_path / "beep.wav")
    assert wcs.post(f"{API}/push/find_all").json()[0]["soundEnabled"] is True
    assert wcs.post(f"{API}/push/sound_off", {"mediaSessionId": session}).status_code == 200
    assert wcs.post(f"{API}/push/unmute", {"mediaSessionId": session}).status_code == 200
    push = Push.objects.get()
    assert (push.audio_muted, push.sound_file) == (False, "")
    bad_action = wcs.post(f"{API}/push/startup", {**body, "rtmpUrl": body["rtmpUrl"] + "2", "options": {"action": "x"}})
    assert bad_action.status_code == 400 and Push.objects.count() == 1


def test_rtsp_rtmp_vod_and_mpegts_agents(wcs, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    assert (
        wcs.post(f"{API}/rtsp/startup", {"uri": "rtsp://127.0.0.1:8554/cam", "localStreamName": "cam"}).status_code
        == 200
    )
    assert (
        wcs.post(f"{API}/rtsp/startup", {"uri": "rtsp://127.0.0.1:8554/cam", "localStreamName": "cam2"}).status_code
        == 409
    )
    assert wcs.post(f"{API}/pull/rtmp/pull", {"uri": "rtmp://127.0.0.1:1936/live/origin"}).status_code == 200
    [rtmp] = wcs.post(f"{API}/pull/rtmp/find_all").json()
    assert (rtmp["uri"], rtmp["localStreamName"], rtmp["status"]) == (
        "rtmp://127.0.0.1:1936/live/origin",
        "origin",
        "NEW",
    )
    # VOD: the file must exist under the media root; paths never leave it.
    (tmp_path / "sample.mp4").write_bytes(b"")
    assert wcs.post(f"{API}/vod/startup", {"uri": "vod-live://missing.mp4", "localStreamName": "v"}).status_code == 400
    escape = wcs.post(f"{API}/vod/startup", {"uri": "vod-live://../etc/passwd", "localStreamName": "v"})
    assert escape.status_code == 400 and "'..' is not allowed" in escape.json()["message"]
    assert wcs.post(f"{API}/vod/startup", {"uri": "file:///etc/passwd", "localStreamName": "v"}).status_code == 400
    vod = wcs.post(f"{API}/vod/startup", {"uri": "vod-live://sample.mp4", "localStreamName": "v", "loop": True})
    assert vod.status_code == 200
    assert Pull.objects.get(stream_name="v").loop is True
    # MPEG-TS: a port is allocated and returned, on the host the call came to (the test client's).
    started = wcs.post(f"{API}/mpepts/startup", {"localStreamName": "ts", "transport": "udp"}).json()
    assert started["uri"].startswith("udp://testserver:") and started["localStreamName"] == "ts"
    other = wcs.post(f"{API}/mpegts/startup", {"localStreamName": "ts2"}).json()
    assert other["uri"] != started["uri"]
    assert [a["localStreamName"] for a in wcs.post(f"{API}/mpegts/find_all").json()] == ["ts", "ts2"]
    assert wcs.post(f"{API}/mpegts/terminate", {"localStreamName": "ts"}).status_code == 200
    assert wcs.post(f"{API}/rtsp/terminate", {"uri": "rtsp://127.0.0.1:8554/cam"}).status_code == 200
    assert Pull.objects.get(stream_name="cam").state == "stopped"


def test_cors_preflight_and_headers(wcs):
    preflight = wcs.options(
        f"{API}/stream/find_all", HTTP_ORIGIN="http://client.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == "*"
    assert preflight["Access-Control-Allow-Methods"] == "GET,POST,OPTIONS"
    # prefer: WCS v3; authorization: Basic auth when it is on.
    assert (
        preflight["Access-Control-Allow-Headers"] == "origin,content-type,accept,x-requested-with,prefer,authorization"
    )
    assert preflight["Access-Control-Expose-Headers"] == "Location,Preference-Applied"
    assert "Access-Control-Allow-Credentials" not in preflight  # auth is off: no credentials to allow
    assert wcs.post(f"{API}/stream/find_all")["Access-Control-Allow-Origin"] == "*"


def test_credentials_are_ignored_when_auth_is_off(wcs):
    wcs.credentials(HTTP_AUTHORIZATION="Basic bm9ib2R5Om5vdGhpbmc=")  # nobody:nothing
    assert wcs.post(f"{API}/stream/find_all").status_code == 404  # not 401


def test_basic_auth_when_switched_on(wcs, settings):
    settings.WCS_REST_AUTH = True
    refused = wcs.post(f"{API}/stream/find_all")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Basic")
    User.objects.create_user("operator", password="secret-pass-1")
    wcs.credentials(HTTP_AUTHORIZATION="Basic b3BlcmF0b3I6d3Jvbmc=")  # operator:wrong
    assert wcs.post(f"{API}/stream/find_all").status_code == 401
    wcs.credentials(HTTP_AUTHORIZATION="Basic b3BlcmF0b3I6c2VjcmV0LXBhc3MtMQ==")  # operator:secret-pass-1
    assert wcs.post(f"{API}/stream/find_all").status_code == 404  # authenticated: no stream


def test_openapi_yaml_and_swagger_ui(client):
    response = client.get("/rest-api/openapi_spec")
    assert response.status_code == 200
    spec = yaml.safe_load(response.content)
    validate(spec)
    assert {f"/rest-api/{method.route}" for method in METHODS} == set(spec["paths"])
    assert "/v1/vhosts" not in spec["paths"]
    # Each method is documented as itself.
    for method in METHODS:
        operation = spec["paths"][f"/rest-api/{method.route}"]["post"]
        assert operation["operationId"] == "wcs_" + method.route.replace("/", "_")
        assert operation["summary"] == method.summary
    ui = client.get("/rest-api-spec/")
    assert ui.status_code == 200 and b"swagger" in ui.content.lower()


def test_the_whole_schema_generates_without_warnings(tmp_path):
    # Both APIs' documents: any warning (a name clash, an undocumented piece) fails.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/rest-api/stream/find" in yaml.safe_load((tmp_path / "schema.yaml").read_text())["paths"]
