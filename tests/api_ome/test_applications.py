"""OME v1 applications: the spec's create/get/patch/delete examples, defaults, merge, 409/207, transactions."""

import copy

import pytest

from apps.hosting.models import Application, OutputProfile
from tests.api_ome.spec_examples import CREATE_APP_REQUEST, GET_APP_RESPONSE, PATCH_APP_REQUEST

pytestmark = pytest.mark.django_db


@pytest.fixture
def vhost(ome):
    ome.post("/v1/vhosts", [{"name": "vh", "host": {"names": ["vh.example"]}}])
    return "vh"


def test_it_lists_apps(ome):
    response = ome.get("/v1/vhosts/default/apps")
    assert response.status_code == 200
    assert response.json() == {"statusCode": 200, "message": "OK", "response": ["app"]}


def test_it_lists_apps_of_an_unknown_vhost_as_404(ome):
    response = ome.get("/v1/vhosts/default1/apps")
    assert response.status_code == 404
    assert response.json() == {"message": "[HTTP] Could not find the virtual host: [default1] (404)", "statusCode": 404}


def test_it_creates_the_spec_example_app(ome, vhost):
    response = ome.post(f"/v1/vhosts/{vhost}/apps", CREATE_APP_REQUEST)
    assert response.status_code == 200
    [item] = response.json()
    assert item["statusCode"] == 200 and item["message"] == "OK"
    created = item["response"]
    assert created["name"] == "app" and created["type"] == "live" and created["dynamic"] is False
    assert created["outputProfiles"] == CREATE_APP_REQUEST[0]["outputProfiles"]
    assert created["providers"] == CREATE_APP_REQUEST[0]["providers"]
    assert OutputProfile.objects.get(application__virtual_host__name=vhost).name == "default"


def test_a_new_app_gets_omes_defaults(ome, vhost):
    response = ome.post(f"/v1/vhosts/{vhost}/apps", [{"name": "app", "type": "live"}])
    assert response.status_code == 200
    got = ome.get(f"/v1/vhosts/{vhost}/apps/app")
    assert got.status_code == 200
    assert got.json() == GET_APP_RESPONSE


def test_it_answers_404_for_an_unknown_app(ome):
    response = ome.get("/v1/vhosts/default/apps/app2")
    assert response.status_code == 404
    assert response.json() == {
        "message": "[HTTP] Could not find the application: [default/app2] (404)",
        "statusCode": 404,
    }


def test_it_answers_409_for_a_duplicate_and_207_for_a_mix(ome):
    response = ome.post("/v1/vhosts/default/apps", [{"name": "app", "type": "live"}])
    assert response.status_code == 409
    assert response.json() == [{"statusCode": 409, "message": "Conflict", "response": {"name": "app", "type": "live"}}]

    response = ome.post("/v1/vhosts/default/apps", [{"name": "app2", "type": "live"}, {"name": "app", "type": "live"}])
    assert response.status_code == 207
    created, conflict = response.json()
    assert created["statusCode"] == 200 and created["response"]["name"] == "app2"
    assert conflict["statusCode"] == 409 and conflict["message"] == "Conflict"


def test_a_bad_app_writes_nothing(ome, vhost):
    # The second profile is invalid: the app and its first profile must not be left behind.
    bad = copy.deepcopy(CREATE_APP_REQUEST[0])
    bad["outputProfiles"]["outputProfile"].append({"name": "broken", "outputStreamName": "x", "encodes": {}})
    response = ome.post(f"/v1/vhosts/{vhost}/apps", [bad])
    assert response.status_code == 400
    [item] = response.json()
    assert item["statusCode"] == 400
    assert "outputProfiles.outputProfile[1].encodes" in item["message"]
    assert not Application.objects.filter(virtual_host__name=vhost).exists()
    assert not OutputProfile.objects.filter(application__virtual_host__name=vhost).exists()


def test_a_failure_while_writing_rolls_back(ome, vhost, monkeypatch):
    # Even an error after the app row is written leaves no half-created app behind.
    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(OutputProfile, "save", explode)
    response = ome.post(f"/v1/vhosts/{vhost}/apps", CREATE_APP_REQUEST)
    assert response.status_code == 500
    assert response.json() == {"statusCode": 500, "message": "[HTTP] Internal Server Error (500)"}
    assert not Application.objects.filter(virtual_host__name=vhost).exists()


def test_it_refuses_unknown_types_and_bad_bodies(ome, vhost):
    assert ome.post(f"/v1/vhosts/{vhost}/apps", [{"name": "x", "type": "vod"}]).status_code == 400
    assert ome.post(f"/v1/vhosts/{vhost}/apps", [{"name": "x"}]).json()[0]["message"] == (
        "[HTTP] type: This field is required. (400)"
    )
    response = ome.post(f"/v1/vhosts/{vhost}/apps", {"name": "x", "type": "live"})
    assert response.json() == {"statusCode": 400, "message": "[HTTP] Request body must be an array (400)"}
    assert ome.post(f"/v1/vhosts/{vhost}/apps", [{"name": "x", "type": "live", "providers": []}]).status_code == 400
    assert not Application.objects.filter(virtual_host__name=vhost).exists()


def test_patch_merges_into_the_stored_config(ome):
    response = ome.patch("/v1/vhosts/default/apps/app", PATCH_APP_REQUEST)
    assert response.status_code == 200
    body = response.json()
    assert body["statusCode"] == 200 and body["message"] == "OK"
    assert body["response"]["providers"] == {
        "ovt": {},
        "rtmp": {},
        "rtspPull": {},
        "srt": {},
        "webrtc": {"timeout": 60000},
    }
    assert body["response"]["publishers"] == {"llhls": {}, "ovt": {}, "webrtc": {}}
    assert [p["name"] for p in body["response"]["outputProfiles"]["outputProfile"]] == ["bypass_stream"]
    assert Application.objects.get(name="app").providers["webrtc"] == {"timeout": 60000}

    # A second patch merges again, keeping the first one's values.
    ome.patch("/v1/vhosts/default/apps/app", {"providers": {"webrtc": {"other": 1}}})
    assert Application.objects.get(name="app").providers["webrtc"] == {"timeout": 60000, "other": 1}


def test_patch_refuses_a_name_change(ome):
    response = ome.patch("/v1/vhosts/default/apps/app", {"name": "other"})
    assert response.status_code == 400
    assert response.json() == {"message": "[HTTP] Cannot change [name] using this API (400)", "statusCode": 400}
    assert Application.objects.filter(name="app").exists()


def test_patch_refuses_output_profiles_and_bad_values(ome):
    response = ome.patch("/v1/vhosts/default/apps/app", {"outputProfiles": {"outputProfile": []}})
    assert response.status_code == 400
    assert response.json()["message"] == "[HTTP] Cannot change [outputProfiles] using this API (400)"
    assert ome.patch("/v1/vhosts/default/apps/app", {"type": "vod"}).status_code == 400
    assert ome.patch("/v1/vhosts/default/apps/app", [1, 2]).status_code == 400
    assert Application.objects.get(name="app").type == "live"


def test_patch_of_an_unknown_app_is_404(ome):
    response = ome.patch("/v1/vhosts/default/apps/app2", PATCH_APP_REQUEST)
    assert response.status_code == 404
    assert response.json()["message"] == "[HTTP] Could not find the application: [default/app2] (404)"


def test_it_deletes_an_app_with_its_profiles(ome):
    response = ome.delete("/v1/vhosts/default/apps/app")
    assert response.status_code == 200
    assert response.json() == {"message": "OK", "statusCode": 200}
    assert not OutputProfile.objects.exists()
    assert ome.delete("/v1/vhosts/default/apps/app").status_code == 404
