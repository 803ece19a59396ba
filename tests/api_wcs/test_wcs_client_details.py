"""What WCS clients trip on (issue #20, items 5-12), driven as a client calls them: a terminated mixer
is gone at once, /cdn/profile/modify of an unknown profile is a 404 whatever the body,
/hls/subscribers is a list of HLSSubscriber, GET /stream/find_all, CORS with Basic auth on, WCS
application keys (defaultApp), the MPEG-TS address and waiting status, failed agents findable.
(A real browser's preflight: tests/integration/test_wcs_cors_browser.py.)"""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
import yaml
from django.contrib.auth.models import User
from django.utils import timezone

from apps.cdn.models import CdnProfile
from apps.hosting.models import Application, VirtualHost
from apps.jobs.choices import JobState
from apps.mixing.models import Mixer
from apps.pull.models import Pull
from apps.streams.models import Stream

pytestmark = pytest.mark.django_db
API = "/rest-api"


def live(name: str, application: Application | None = None, **fields) -> Stream:
    return Stream.objects.create(
        application=application or Application.objects.get(name="app"),
        name=name,
        source_type="Rtmp",
        remote_address="127.0.0.1:50000",
        input_tracks=[{"id": 0, "kind": "video", "codec": "H264", "width": 640, "height": 360}],
        **fields,
    )


# -- 5: /mixer/terminate ----------------------------------------------------------------------------


def test_a_terminated_mixer_is_gone_at_once_while_its_worker_tears_it_down(wcs):
    live("s1")
    assert wcs.post(f"{API}/mixer/startup", {"uri": "mixer://m1"}).status_code == 200
    assert wcs.post(f"{API}/mixer/add", {"uri": "mixer://m1", "remoteStreamName": "s1"}).status_code == 200
    # A worker runs it (what the transcode worker writes when it takes the mixer).
    Mixer.objects.update(state=JobState.STARTED, started_at=timezone.now(), heartbeat_at=timezone.now())
    assert [m["uri"] for m in wcs.post(f"{API}/mixer/find_all").json()] == ["mixer://m1"]

    assert wcs.post(f"{API}/mixer/terminate", {"uri": "mixer://m1"}).status_code == 200
    assert Mixer.objects.get().state == JobState.STOPPING  # the worker is still tearing it down
    again = wcs.post(f"{API}/mixer/terminate", {"uri": "mixer://m1"})
    assert (again.status_code, again.json()["message"]) == (404, "Mixer not found: mixer://m1")
    missing = wcs.post(f"{API}/mixer/find_all")
    assert (missing.status_code, missing.json()["message"]) == (404, "Not found")
    assert wcs.post(f"{API}/mixer/add", {"uri": "mixer://m1", "remoteStreamName": "s1"}).status_code == 404


# -- 6: /cdn/profile/modify -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"name": "-1080p", "profile": {}},
        {"name": "-1080p"},
        {"name": "-1080p", "profile": {"video": {"fps": "fast"}}},
        {"name": "-1080p", "profile": {"video": {"height": 1080}}},
    ],
    ids=["empty-profile", "no-profile", "bad-profile", "good-profile"],
)
def test_modifying_an_unknown_profile_is_404_whatever_the_body(wcs, body):
    response = wcs.post(f"{API}/cdn/profile/modify", body)
    assert (response.status_code, response.json()["message"]) == (404, "Not Found")
    assert not CdnProfile.objects.exists()


def test_modifying_a_known_profile_still_checks_the_profile(wcs):
    profile = {"video": {"height": 720}}
    assert wcs.post(f"{API}/cdn/profile/add", {"name": "-720p", "profile": profile}).status_code == 200
    for body in ({"name": "-720p"}, {"name": "-720p", "profile": {}}):
        refused = wcs.post(f"{API}/cdn/profile/modify", body)
        assert refused.status_code == 400
        assert refused.json()["message"] == "Bad Request: profile must have an audio or a video part"
    assert wcs.post(f"{API}/cdn/profile/print").json() == [{"name": "-720p", "profile": profile}]


# -- 7: /hls/subscribers ----------------------------------------------------------------------------


def viewer(number: int, protocol: str, address: str, port: int, agent: str) -> dict:
    """A viewer session as the engine's heartbeat stores it (`HttpViewer.as_dict`)."""
    return {"number": number, "protocol": protocol, "address": address, "port": port, "user_agent": agent,
            "first_seen": 1.7e9, "last_seen": 1.7e9 + 5}  # fmt: skip


def test_hls_subscribers_is_a_list_of_subscriber_objects(wcs):
    viewers = [
        viewer(4, "hls", "10.0.0.9", 40001, "VLC/3.0.20"),
        viewer(1, "hls", "10.0.0.7", 51000, "Mozilla/5.0 hls.js"),
        viewer(2, "llhls", "10.0.0.8", 52000, "AppleCoreMedia/1.0"),
        viewer(3, "hls", "10.0.0.7", 51002, "ffmpeg/Lavf60"),
    ]
    stream = live("cam", connections={"hls": 3, "llhls": 1, "webrtc": 2}, hls_viewers=viewers)
    response = wcs.post(f"{API}/hls/subscribers", {"hlsId": "cam"})
    assert response.status_code == 200
    subscribers = response.json()
    assert isinstance(subscribers, list) and len(subscribers) == 3  # the engine's HLS viewers only, oldest first
    assert [s["id"] for s in subscribers] == [f"{stream.media_session_id}-HLS-{n}" for n in (1, 3, 4)]
    assert [(s["ip"], s["port"], s["userAgent"]) for s in subscribers] == [
        ("10.0.0.7", 51000, "Mozilla/5.0 hls.js"),
        ("10.0.0.7", 51002, "ffmpeg/Lavf60"),
        ("10.0.0.9", 40001, "VLC/3.0.20"),
    ]
    assert set(subscribers[0]) == {"id", "hlsId", "profileName", "ip", "port", "userAgent", "active"}
    assert {(s["hlsId"], s["profileName"], s["active"]) for s in subscribers} == {("cam", "source", True)}
    page = wcs.post(f"{API}/hls/subscribers", {"hlsId": "cam", "offset": 1, "size": 1}).json()
    assert [s["id"] for s in page] == [subscribers[1]["id"]]
    assert wcs.post(f"{API}/hls/subscribers", {"hlsId": "cam", "profileName": "-720p"}).status_code == 404
    assert wcs.post(f"{API}/hls/subscribers", {"hlsId": "cam", "offset": -1}).status_code == 400


def test_hls_subscribers_of_an_unwatched_stream_is_an_empty_list(wcs):
    live("cam")
    response = wcs.post(f"{API}/hls/subscribers", {"hlsId": "cam"})
    assert (response.status_code, response.json()) == (200, [])


# -- 8: GET where WCS's listing shows GET -------------------------------------------------------------


def test_stream_find_all_answers_get_as_the_wcs_listing_shows(wcs):
    assert wcs.get(f"{API}/stream/find_all").status_code == 404  # no stream yet: the table's 404
    live("cam")
    response = wcs.get(f"{API}/stream/find_all")
    assert response.status_code == 200
    assert [s["name"] for s in response.json()] == ["cam"]
    assert response.json() == wcs.post(f"{API}/stream/find_all").json()
    # The other methods stay POST only, as the listing shows them.
    assert wcs.get(f"{API}/stream/find").status_code == 405
    spec = yaml.safe_load(wcs.get(f"{API}/openapi_spec").content)
    assert set(spec["paths"][f"{API}/stream/find_all"]) == {"get", "post"}
    assert set(spec["paths"][f"{API}/stream/find"]) == {"post"}


def test_get_stream_find_all_needs_credentials_when_auth_is_on(wcs, settings):
    settings.WCS_REST_AUTH = True
    assert wcs.get(f"{API}/stream/find_all").status_code == 401


# -- 9: CORS ----------------------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def auth_on(settings):
    settings.WCS_REST_AUTH = True
    settings.WCS_CORS_ALLOW_CREDENTIALS = True
    User.objects.create_user("player", password="player-pass-1")


def test_a_browser_preflight_with_basic_auth_on_is_allowed(wcs, auth_on):
    preflight = wcs.options(
        f"{API}/stream/find_all",
        HTTP_ORIGIN="http://player.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
    )
    assert preflight.status_code == 200  # no credentials in a preflight, and no 401 for it
    assert preflight["Access-Control-Allow-Origin"] == "http://player.example"  # not "*": credentials
    assert preflight["Access-Control-Allow-Credentials"] == "true"
    assert {"authorization", "content-type"} <= set(preflight["Access-Control-Allow-Headers"].split(","))
    assert "POST" in preflight["Access-Control-Allow-Methods"].split(",")
    assert "Origin" in preflight["Vary"]

    wcs.credentials(HTTP_AUTHORIZATION=basic("player", "player-pass-1"))
    answer = wcs.post(f"{API}/stream/find_all", HTTP_ORIGIN="http://player.example")
    assert answer.status_code == 404  # authenticated; no stream
    assert answer["Access-Control-Allow-Origin"] == "http://player.example"
    assert answer["Access-Control-Allow-Credentials"] == "true"
    assert answer["Access-Control-Expose-Headers"] == "Location,Preference-Applied"


def test_cors_allows_only_the_configured_origins(wcs, auth_on, settings):
    settings.WCS_CORS_ALLOW_ORIGIN = "http://player.example, https://admin.example"
    allowed = wcs.options(
        f"{API}/stream/find_all", HTTP_ORIGIN="https://admin.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert allowed["Access-Control-Allow-Origin"] == "https://admin.example"
    refused = wcs.options(
        f"{API}/stream/find_all", HTTP_ORIGIN="http://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert "Access-Control-Allow-Origin" not in refused and "Access-Control-Allow-Credentials" not in refused


# -- 10: application keys ---------------------------------------------------------------------------


def test_streams_report_and_match_wcs_application_keys(wcs):
    live("cam")
    [stream] = wcs.post(f"{API}/stream/find_all").json()
    assert stream["appKey"] == "defaultApp"
    for key in ("appKey", "appKeyName"):
        [found] = wcs.post(f"{API}/stream/find", {key: "defaultApp"}).json()
        assert found["name"] == "cam"
        missing = wcs.post(f"{API}/stream/find", {key: "app"})  # the StreamHub name is not a WCS key
        assert (missing.status_code, missing.json()["message"]) == (404, "Stream not found")


def test_application_keys_map_to_streamhub_applications(wcs, settings):
    vhost = VirtualHost.objects.get(name="default")
    studio = Application.objects.create(virtual_host=vhost, name="studio")
    settings.WCS_APP_KEYS = {"defaultApp": "default/app", "flashStreamingApp": "default/studio"}
    live("cam")
    live("show", application=studio)
    live("hidden", application=Application.objects.create(virtual_host=vhost, name="other"))
    listed = {s["name"]: s["appKey"] for s in wcs.post(f"{API}/stream/find_all").json()}
    assert listed == {"cam": "defaultApp", "show": "flashStreamingApp"}  # "other" has no key: not WCS's
    assert [s["name"] for s in wcs.post(f"{API}/stream/find", {"appKey": "flashStreamingApp"}).json()] == ["show"]
    assert [s["name"] for s in wcs.post(f"{API}/stream/find", {"appKey": "defaultApp"}).json()] == ["cam"]


# -- 11: /mpegts/startup ----------------------------------------------------------------------------


def test_mpegts_startup_advertises_the_host_the_call_came_to_and_waits_for_data(wcs):
    started = wcs.post(f"{API}/mpegts/startup", {"localStreamName": "ts"}, HTTP_HOST="media.example:8081")
    assert started.status_code == 200
    body = started.json()
    assert body["uri"].startswith("udp://media.example:") and body["status"] == "CONNECTED"
    pull = Pull.objects.get(stream_name="ts")
    assert pull.urls[0].startswith("udp://0.0.0.0:")  # it listens on every address
    # Found by the address it handed out; still waiting while the worker runs it without data.
    Pull.objects.filter(pk=pull.pk).update(state=JobState.STARTED)
    [found] = wcs.post(f"{API}/mpegts/find", {"uri": body["uri"]}, HTTP_HOST="media.example:8081").json()
    assert found["status"] == "CONNECTED"
    # Data flows: the stream is live.
    Pull.objects.filter(pk=pull.pk).update(started_at=timezone.now())
    [found] = wcs.post(f"{API}/mpegts/find_all", HTTP_HOST="media.example:8081").json()
    assert found["status"] == "PUBLISHING"


def test_mpegts_startup_advertises_the_configured_address(wcs, settings):
    settings.WCS_MPEGTS_ADVERTISED_HOST = "203.0.113.7"
    body = wcs.post(f"{API}/mpegts/startup", {"localStreamName": "ts", "transport": "tcp"}).json()
    port = Pull.objects.get(stream_name="ts").urls[0].rsplit(":", 1)[1].split("?")[0]
    assert body["uri"] == f"tcp://203.0.113.7:{port}"  # where a publisher connects (no ?listen=1)


# -- 12: failed agents ------------------------------------------------------------------------------


def failed_rtsp(wcs, name: str, failed_ago: timedelta) -> Pull:
    uri = f"rtsp://127.0.0.1:9/{name}"
    assert wcs.post(f"{API}/rtsp/startup", {"uri": uri, "localStreamName": name}).status_code == 200
    pull = Pull.objects.get(stream_name=name)
    assert pull.claim("worker")  # the media worker takes the pull (its lease) and records the failure
    assert pull.mark_error("Failed to pull provided URL: Connection refused")
    Pull.objects.filter(pk=pull.pk).update(finished_at=timezone.now() - failed_ago)
    return pull


def test_a_failed_agent_stays_findable_with_its_reason(wcs, settings):
    settings.WCS_FAILED_AGENT_KEEP_SECONDS = 300
    failed_rtsp(wcs, "deadcam", timedelta(seconds=10))
    [agent] = wcs.post(f"{API}/rtsp/find", {"localStreamName": "deadcam"}).json()
    assert (agent["status"], agent["error"]) == ("FAILED", "Failed to pull provided URL: Connection refused")
    assert [a["localStreamName"] for a in wcs.post(f"{API}/rtsp/find_all").json()] == ["deadcam"]
    assert len(wcs.post(f"{API}/rtsp/find", {"status": "FAILED"}).json()) == 1
    # The camera's URI and name are free again: a new try is not a conflict.
    retry = wcs.post(f"{API}/rtsp/startup", {"uri": "rtsp://127.0.0.1:9/deadcam", "localStreamName": "deadcam"})
    assert retry.status_code == 200
    assert [a["status"] for a in wcs.post(f"{API}/rtsp/find_all").json()] == ["NEW", "FAILED"]


def test_a_failed_agent_is_forgotten_after_the_keep_time(wcs, settings):
    settings.WCS_FAILED_AGENT_KEEP_SECONDS = 300
    failed_rtsp(wcs, "oldcam", timedelta(seconds=301))
    missing = wcs.post(f"{API}/rtsp/find", {"localStreamName": "oldcam"})
    assert (missing.status_code, missing.json()["message"]) == (404, "RTSP not found")


def test_terminating_a_failed_agent_dismisses_it(wcs):
    pull = failed_rtsp(wcs, "deadcam", timedelta(seconds=1))
    assert wcs.post(f"{API}/rtsp/terminate", {"localStreamName": "deadcam"}).status_code == 200
    pull.refresh_from_db()
    assert pull.state == JobState.STOPPED and pull.error.startswith("Failed to pull")
    assert wcs.post(f"{API}/rtsp/find_all").status_code == 404
