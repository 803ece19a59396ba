"""Settings that used to be stored and break later are refused where they enter (API, admin, import):
OME publisher/provider settings with OME's types and ranges, output profile bitrates and stream
names, and task ids that end up in file names. Each answer is a 400 and nothing is stored."""

from __future__ import annotations

import copy
import json

import pytest

from apps.hosting.models import Application, OutputProfile
from apps.push.models import Push
from apps.recording.models import Record

pytestmark = pytest.mark.django_db
APP = "/v1/vhosts/default/apps/app"
PROFILES = f"{APP}/outputProfiles"


def stored_publishers() -> dict:
    return copy.deepcopy(Application.objects.get(virtual_host__name="default", name="app").publishers)


@pytest.mark.parametrize(
    "publishers, message",
    [
        ({"hls": {"segmentDuration": "abc"}}, "publishers.hls.segmentDuration: must be a number from 1 to 60 s"),
        ({"hls": {"segmentDuration": 1e308}}, "publishers.hls.segmentDuration: must be a number from 1 to 60 s"),
        ({"hls": {"segmentDuration": 0}}, "publishers.hls.segmentDuration: must be a number from 1 to 60 s"),
        ({"hls": {"segmentDuration": -5}}, "publishers.hls.segmentDuration: must be a number from 1 to 60 s"),
        ({"hls": {"segmentDuration": True}}, "publishers.hls.segmentDuration: must be a number from 1 to 60 s"),
        ({"hls": {"segmentCount": 1e23}}, "publishers.hls.segmentCount: must be an integer from 1 to 100"),
        ({"hls": {"segmentCount": 2.5}}, "publishers.hls.segmentCount: must be an integer from 1 to 100"),
        ({"llhls": {"chunkDuration": 0}}, "publishers.llhls.chunkDuration: must be a number from 0.1 to 10 s"),
        ({"llhls": {"chunkDuration": 3, "segmentDuration": 2}}, "must not be longer than llhls.segmentDuration"),
        ({"webrtc": {"timeout": "soon"}}, "publishers.webrtc.timeout: must be an integer from 0 to 3600000 ms"),
        ({"webrtc": {"rtx": "yes"}}, "publishers.webrtc.rtx: must be true or false"),
        ({"hls": 5}, "publishers.hls: must be an object of settings"),
    ],
)
def test_bad_publisher_settings_are_refused_and_nothing_is_stored(ome, publishers, message):
    before = stored_publishers()
    response = ome.patch(APP, {"publishers": publishers})
    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400 and message in body["message"]
    assert stored_publishers() == before


def test_infinity_written_as_a_huge_exponent_is_refused(ome):
    response = ome.generic("PATCH", APP, '{"publishers": {"hls": {"segmentDuration": 1e999}}}', "application/json")
    assert response.status_code == 400
    assert "publishers.hls" in response.json()["message"]


def test_bad_provider_settings_are_refused_on_create(ome):
    app = {"name": "bad", "type": "live", "providers": {"webrtc": {"timeout": -1}}}
    response = ome.post("/v1/vhosts/default/apps", [app])
    assert response.status_code == 400
    assert "providers.webrtc.timeout: must be an integer from 0 to 3600000 ms" in response.json()[0]["message"]
    assert not Application.objects.filter(name="bad").exists()


def test_good_settings_are_stored(ome):
    publishers = {
        "hls": {"segmentDuration": 2, "segmentCount": 6},
        "llhls": {"chunkDuration": 0.5, "segmentDuration": 2},
    }
    assert ome.patch(APP, {"publishers": publishers}).status_code == 200
    stored = stored_publishers()
    assert stored["hls"] == {"segmentDuration": 2, "segmentCount": 6}
    assert stored["llhls"] == {"chunkDuration": 0.5, "segmentDuration": 2}


def test_the_import_command_refuses_bad_settings_too(tmp_path, ome):
    from django.core.management import CommandError, call_command

    exported = ome.get("/v1/vhosts/default/apps/app").json()["response"]
    exported.pop("dynamic", None)
    exported["publishers"]["hls"] = {"segmentCount": 1e23}
    config = {"vhosts": [{"name": "default", "host": {"names": ["*"]}, "apps": [exported]}]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    before = stored_publishers()
    with pytest.raises((CommandError, SystemExit)):
        call_command("importconfig", str(path))
    assert stored_publishers() == before


def test_the_admin_form_refuses_bad_settings():
    from apps.hosting.admin import ApplicationForm

    app = Application.objects.get(virtual_host__name="default", name="app")
    data = {
        "virtual_host": app.virtual_host_id,
        "name": "app",
        "type": "live",
        "providers": "{}",
        "publishers": json.dumps({"hls": {"segmentDuration": "abc"}}),
    }
    form = ApplicationForm(data, instance=app)
    assert not form.is_valid()
    assert "segmentDuration" in str(form.errors["publishers"])


# -- output profiles --------------------------------------------------------------------------------


def profile(**changes) -> dict:
    video = {"name": "v", "codec": "h264", "bitrate": 1_000_000, "width": 640, "height": 360}
    body = {
        "name": "low",
        "outputStreamName": "${OriginStreamName}_low",
        "encodes": {"videos": [video], "audios": [{"name": "a", "codec": "aac", "bitrate": 128000}]},
    }
    for key, value in changes.items():
        if key == "video_bitrate":
            video["bitrate"] = value
        elif key == "audio_bitrate":
            body["encodes"]["audios"][0]["bitrate"] = value
        else:
            body[key] = value
    return body


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"video_bitrate": 1e300}, "bitrate: A bitrate is at most 500000000 bits per second."),
        ({"audio_bitrate": "900M"}, "bitrate: A bitrate is at most 2000000 bits per second."),
        ({"outputStreamName": "../../x"}, "outputStreamName: outputStreamName must make a stream name"),
        ({"outputStreamName": "${OriginStreamName}/x"}, "outputStreamName must make a stream name"),
        ({"outputStreamName": ".."}, "outputStreamName must make a stream name"),
    ],
)
def test_bad_output_profiles_are_refused_and_not_stored(ome, changes, message):
    response = ome.post(PROFILES, [profile(**changes)])
    assert response.status_code == 400
    assert message in response.json()[0]["message"]
    assert not OutputProfile.objects.filter(name="low").exists()


def test_a_huge_exponent_bitrate_is_refused(ome):
    body = json.dumps([profile()]).replace("1000000", "1e999")
    response = ome.generic("POST", PROFILES, body, "application/json")
    assert response.status_code == 400
    assert "bitrate" in response.json()[0]["message"]


def test_a_good_output_profile_is_stored(ome):
    assert ome.post(PROFILES, [profile()]).status_code == 200
    assert OutputProfile.objects.get(name="low").output_stream_name == "${OriginStreamName}_low"


def test_the_admin_refuses_an_output_stream_name_with_a_path():
    from apps.hosting.admin import OutputProfileForm

    app = Application.objects.get(virtual_host__name="default", name="app")
    data = {
        "application": app.pk,
        "name": "low",
        "output_stream_name": "../../x",
        "encodes": json.dumps(profile()["encodes"]),
        "playlists": "[]",
        "position": 5,
    }
    form = OutputProfileForm(data)
    assert not form.is_valid() and "output_stream_name" in form.errors


# -- task ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize("record_id", ["../../../../tmp/x", "a/b", ".hidden", "x" * 201, ""])
def test_a_record_id_that_is_no_file_name_is_refused(ome, settings, tmp_path, record_id):
    settings.MEDIA_ROOT = tmp_path
    response = ome.post(f"{APP}:startRecord", {"id": record_id, "stream": {"name": "cam"}})
    assert response.status_code == 400
    assert "id:" in response.json()["message"]
    assert not Record.objects.exists()


def test_a_push_id_with_a_path_is_refused(ome):
    body = {
        "id": "../x",
        "stream": {"name": "cam"},
        "protocol": "rtmp",
        "url": "rtmp://127.0.0.1/live",
        "streamKey": "k",
    }
    response = ome.post(f"{APP}:startPush", body)
    assert response.status_code == 400
    assert response.json()["message"].startswith("[HTTP] id: ")
    assert not Push.objects.exists()


# -- the admin's job forms use the API's rules ------------------------------------------------------


def _app_pk() -> int:
    return Application.objects.get(virtual_host__name="default", name="app").pk


def test_the_admin_refuses_a_push_to_a_refused_address_and_an_id_with_a_path(settings):
    from apps.push.admin import PushForm

    settings.OUTBOUND_ALLOW = []
    data = {"application": _app_pk(), "push_id": "../x", "stream_name": "cam", "protocol": "rtmp",
            "url": "rtmp://169.254.169.254/live", "stream_key": ""}  # fmt: skip
    form = PushForm(data)
    assert not form.is_valid()
    assert "push_id" in form.errors and "link-local address" in str(form.errors["url"])
    good = PushForm({**data, "push_id": "p1", "url": "rtmp://8.8.8.8/live"})
    assert good.is_valid(), good.errors


def test_the_admin_refuses_a_pull_from_a_refused_address(settings):
    from apps.pull.admin import PullForm

    settings.OUTBOUND_ALLOW = []
    data = {"application": _app_pk(), "stream_name": "cam", "source_type": "HttpPull",
            "urls": json.dumps(["http://169.254.169.254/latest/meta-data"])}  # fmt: skip
    form = PullForm(data)
    assert not form.is_valid() and "link-local address" in str(form.errors["urls"])


def test_the_admin_refuses_record_and_dump_ids_with_a_path():
    from apps.hls_dump.admin import HlsDumpForm
    from apps.recording.admin import RecordForm

    record = RecordForm({"application": _app_pk(), "record_id": "../../../../tmp/x", "stream_name": "cam"})
    assert not record.is_valid() and "record_id" in record.errors
    dump = HlsDumpForm({"application": _app_pk(), "dump_id": "../d", "stream_name": "cam", "output_path": "dumps/d"})
    assert not dump.is_valid() and "dump_id" in dump.errors
