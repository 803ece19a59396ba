"""OME v1 output profiles: the spec's list/create/get/delete examples, PUT replace, 404/409/207."""

import pytest

from apps.hosting.models import OutputProfile
from tests.api_ome.spec_examples import CREATE_PROFILE_REQUEST

pytestmark = pytest.mark.django_db
PROFILES = "/v1/vhosts/default/apps/app/outputProfiles"


def test_it_lists_profiles(ome):
    response = ome.get(PROFILES)
    assert response.status_code == 200
    assert response.json() == {"statusCode": 200, "message": "OK", "response": ["bypass_stream"]}


def test_it_lists_profiles_of_an_unknown_app_as_404(ome):
    response = ome.get("/v1/vhosts/vhost/apps/app1/outputProfiles")
    assert response.status_code == 404
    assert response.json() == {"message": "[HTTP] Could not find the virtual host: [vhost] (404)", "statusCode": 404}
    response = ome.get("/v1/vhosts/default/apps/app1/outputProfiles")
    assert response.json() == {
        "message": "[HTTP] Could not find the application: [default/app1] (404)",
        "statusCode": 404,
    }


def test_it_creates_the_spec_example_profile(ome):
    response = ome.post(PROFILES, CREATE_PROFILE_REQUEST)
    assert response.status_code == 200
    assert response.json() == [
        {
            "statusCode": 200,
            "message": "OK",
            "response": {
                "name": "bypass_profile",
                "outputStreamName": "${OriginStreamName}_bypass",
                "encodes": {"videos": [{"bypass": True}], "audios": [{"bypass": True}]},
            },
        }
    ]
    assert ome.get(PROFILES).json()["response"] == ["bypass_stream", "bypass_profile"]


def test_missing_audios_come_back_as_an_empty_list(ome):
    # The spec's "Get Output Profile Information" example: "audios": [] beside the bypass video.
    ome.post(PROFILES, [{"name": "bypass_profile2", "outputStreamName": "${OriginStreamName}_bypass",
                         "encodes": {"videos": [{"bypass": True}]}}])  # fmt: skip
    response = ome.get(f"{PROFILES}/bypass_profile2")
    assert response.status_code == 200
    assert response.json() == {
        "statusCode": 200,
        "message": "OK",
        "response": {
            "name": "bypass_profile2",
            "outputStreamName": "${OriginStreamName}_bypass",
            "encodes": {"audios": [], "videos": [{"bypass": True}]},
        },
    }


def test_it_answers_409_and_207(ome):
    ome.post(PROFILES, CREATE_PROFILE_REQUEST)
    response = ome.post(PROFILES, CREATE_PROFILE_REQUEST)
    assert response.status_code == 409
    assert response.json()[0]["message"] == "Conflict"
    second = {**CREATE_PROFILE_REQUEST[0], "name": "second"}
    response = ome.post(PROFILES, [second, CREATE_PROFILE_REQUEST[0]])
    assert response.status_code == 207
    assert [item["statusCode"] for item in response.json()] == [200, 409]


def test_it_refuses_profiles_without_encodes(ome):
    bad = [
        {"name": "noencodes", "outputStreamName": "x"},
        {"name": "empty", "outputStreamName": "x", "encodes": {"videos": [], "audios": []}},
        {"name": "nocodec", "outputStreamName": "x", "encodes": {"videos": [{"bitrate": 1000}]}},
        {"name": "badcodec", "outputStreamName": "x", "encodes": {"audios": [{"codec": "mp3"}]}},
        {"outputStreamName": "x", "encodes": {"videos": [{"bypass": True}]}},
    ]
    response = ome.post(PROFILES, bad)
    assert response.status_code == 400
    messages = [item["message"] for item in response.json()]
    assert messages[0] == "[HTTP] encodes: This field is required. (400)"
    assert messages[1] == "[HTTP] encodes: encodes must have videos or audios with at least one item. (400)"
    assert messages[2] == "[HTTP] encodes.videos[0].codec: A video encode needs a codec unless bypass is true. (400)"
    assert messages[3] == '[HTTP] encodes.audios[0].codec: "mp3" is not a valid choice. (400)'
    assert messages[4] == "[HTTP] name: This field is required. (400)"
    assert OutputProfile.objects.count() == 1


def test_it_accepts_abr_encodes_with_omes_bitrate_notation(ome):
    profile = {
        "name": "abr",
        "outputStreamName": "${OriginStreamName}_abr",
        "encodes": {
            "videos": [
                {"name": "720p", "codec": "h264", "bitrate": "2.5M", "width": 1280, "height": 720, "framerate": 30},
                {"name": "360p", "codec": "h264", "bitrate": "800K", "width": 640, "height": 360, "preset": "faster"},
            ],
            "audios": [{"name": "aac", "codec": "aac", "bitrate": 128000, "samplerate": 48000, "channel": 2}],
            "images": [{"codec": "jpeg", "width": 320, "height": 180, "framerate": 1}],
        },
        "playlists": [
            {"name": "abr", "fileName": "abr", "renditions": [{"name": "720p", "video": "720p", "audio": "aac"}]}
        ],
    }
    response = ome.post(PROFILES, [profile])
    assert response.status_code == 200
    stored = ome.get(f"{PROFILES}/abr").json()["response"]
    assert [video["bitrate"] for video in stored["encodes"]["videos"]] == [2_500_000, 800_000]
    assert stored["playlists"] == profile["playlists"]
    assert stored["encodes"]["images"] == profile["encodes"]["images"]


def test_put_replaces_a_profile(ome):
    ome.post(PROFILES, CREATE_PROFILE_REQUEST)
    replacement = {"outputStreamName": "${OriginStreamName}_audio", "encodes": {"audios": [{"codec": "opus"}]}}
    response = ome.put(f"{PROFILES}/bypass_profile", replacement)
    assert response.status_code == 200
    assert response.json()["response"] == {
        "name": "bypass_profile",
        "outputStreamName": "${OriginStreamName}_audio",
        "encodes": {"audios": [{"codec": "opus"}], "videos": []},
    }
    stored = OutputProfile.objects.get(name="bypass_profile")
    assert stored.output_stream_name == "${OriginStreamName}_audio"
    assert ome.get(PROFILES).json()["response"] == ["bypass_stream", "bypass_profile"]


def test_put_refuses_a_rename_and_bad_bodies(ome):
    response = ome.put(f"{PROFILES}/bypass_stream", {"name": "other", "outputStreamName": "x", "encodes": {}})
    assert response.status_code == 400
    assert response.json()["message"] == "[HTTP] Cannot change [name] using this API (400)"
    assert ome.put(f"{PROFILES}/bypass_stream", {"outputStreamName": "x"}).status_code == 400
    assert OutputProfile.objects.get(name="bypass_stream").output_stream_name == "${OriginStreamName}"


def test_unknown_profile_is_404(ome):
    for method in (ome.get, ome.delete):
        response = method(f"{PROFILES}/nope")
        assert response.status_code == 404
        assert response.json() == {
            "message": "[HTTP] Could not find the output profile: [default/app/nope] (404)",
            "statusCode": 404,
        }


def test_it_deletes_a_profile(ome):
    response = ome.delete(f"{PROFILES}/bypass_stream")
    assert response.status_code == 200
    assert response.json() == {"message": "OK", "statusCode": 200}
    assert ome.get(PROFILES).json()["response"] == []
