"""The OME access token: `Authorization: Basic base64(AccessToken)`, 401s in the envelope with OME's realm."""

import pytest

from tests.conftest import basic

pytestmark = pytest.mark.django_db


def assert_401(response, message):
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="OvenMediaEngine"'
    assert response.json() == {"statusCode": 401, "message": message}


def test_it_requires_the_authorization_header(anonymous):
    assert_401(anonymous.get("/v1/vhosts"), "[HTTP] Authorization header is required to call API (401)")


def test_it_refuses_a_wrong_token(anonymous):
    response = anonymous.get("/v1/vhosts", HTTP_AUTHORIZATION=basic("not-the-token"))
    assert_401(response, "[HTTP] Invalid credential (401)")


def test_curl_user_option_with_an_empty_password_works(anonymous):
    # `curl -u ome-access-token: ...` sends base64("ome-access-token:").
    assert anonymous.get("/v1/vhosts", HTTP_AUTHORIZATION=basic("ome-access-token:")).status_code == 200
    assert anonymous.get("/v1/vhosts", HTTP_AUTHORIZATION=basic("ome-access-token:x")).status_code == 401


def test_it_refuses_other_schemes(anonymous):
    response = anonymous.get("/v1/vhosts", HTTP_AUTHORIZATION="Bearer abc")
    assert_401(response, "[HTTP] Not supported credential type: Bearer (401)")


def test_it_refuses_bad_base64(anonymous):
    response = anonymous.get("/v1/vhosts", HTTP_AUTHORIZATION="Basic !!!")
    assert_401(response, "[HTTP] Invalid credential format (401)")


def test_it_refuses_a_malformed_header(anonymous):
    assert_401(anonymous.get("/v1/vhosts", HTTP_AUTHORIZATION="Basic"), "[HTTP] Invalid authorization header (401)")


def test_it_checks_the_token_before_anything_else(anonymous):
    # Unknown paths and writes are refused the same way: nothing is revealed or changed.
    assert anonymous.get("/v1/no/such/thing").status_code == 401
    assert anonymous.delete("/v1/vhosts/default").status_code == 401
    assert anonymous.post("/v1/vhosts/default/apps", [{"name": "x", "type": "live"}], format="json").status_code == 401


def test_the_spec_example_header_works(ome):
    response = ome.get("/v1/vhosts")
    assert response.status_code == 200
    assert response.json() == {"statusCode": 200, "message": "OK", "response": ["default"]}


def test_unknown_paths_answer_in_the_envelope(ome):
    response = ome.get("/v1/vhosts/default/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "[HTTP] Controller not found (404)"}


def test_an_unknown_response_format_answers_404_in_the_envelope(ome):
    """`?format=api` (DRF's browsable API, not offered here) or any other unknown format: a 404 in OME's
    envelope, not a 500."""
    for path in ("/v1/vhosts?format=api", "/v1/vhosts?format=xml", "/v1/vhosts/default/apps?format=api"):
        response = ome.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"statusCode": 404, "message": "[HTTP] Not found. (404)"}


def test_production_refuses_to_start_without_a_token(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "STREAMHUB_PRODUCTION": "1", "DJANGO_SECRET_KEY": "x" * 50}
    env.pop("OME_ACCESS_TOKEN", None)
    result = subprocess.run([sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "OME_ACCESS_TOKEN is not: refusing to start" in result.stderr
    env["OME_ACCESS_TOKEN"] = "secret-token"
    assert (
        subprocess.run([sys.executable, "manage.py", "check"], env=env, capture_output=True, timeout=60).returncode == 0
    )
