"""The API server as users run it (Daphne on a real port, one for the module): persistence across
restarts, curl-style calls."""

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import OME_AUTH
from tests.integration.conftest import LiveStreamHub

pytestmark = pytest.mark.services
AUTH = {"Authorization": OME_AUTH}


def test_api_changes_survive_a_restart(shared_streamhub):
    created = requests.post(
        f"{shared_streamhub.url}/v1/vhosts/default/apps",
        json=[{"name": "persisted", "type": "live"}],
        headers=AUTH,
        timeout=10,
    )
    assert created.status_code == 200
    patched = requests.patch(
        f"{shared_streamhub.url}/v1/vhosts/default/apps/persisted",
        json={"providers": {"webrtc": {"timeout": 30000}}},
        headers=AUTH,
        timeout=10,
    )
    assert patched.status_code == 200

    shared_streamhub.stop()
    shared_streamhub.start()

    response = requests.get(f"{shared_streamhub.url}/v1/vhosts/default/apps/persisted", headers=AUTH, timeout=10)
    assert response.status_code == 200
    assert response.json()["response"]["providers"]["webrtc"] == {"timeout": 30000}


def test_a_second_django_process_sees_the_rows(shared_streamhub):
    requests.post(
        f"{shared_streamhub.url}/v1/vhosts",
        json=[{"name": "second", "host": {"names": ["second.example"]}}],
        headers=AUTH,
        timeout=10,
    )
    exported = json.loads(shared_streamhub.manage("exportconfig").stdout)
    assert [vhost["name"] for vhost in exported["vhosts"]] == ["default", "second"]
    # The module's server is shared: the next tests see the one vhost a fresh install has.
    deleted = requests.delete(f"{shared_streamhub.url}/v1/vhosts/second", headers=AUTH, timeout=10)
    assert deleted.status_code == 200


def test_the_readme_curl_examples_work(shared_streamhub):
    token_header = shared_streamhub.manage("apitoken").stdout.strip()
    assert token_header == OME_AUTH
    result = subprocess.run(
        ["curl", "-s", "-H", f"Authorization: {token_header}", f"{shared_streamhub.url}/v1/vhosts"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert json.loads(result.stdout) == {"statusCode": 200, "message": "OK", "response": ["default"]}
    result = subprocess.run(
        [
            "curl", "-s", "-X", "POST", "-H", f"Authorization: {token_header}",
            f"{shared_streamhub.url}/v1/vhosts/default/apps", "-d", '[{"name": "live", "type": "live"}]',
        ],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert json.loads(result.stdout)[0]["statusCode"] == 200
    result = subprocess.run(
        ["curl", "-s", "-u", "ome-access-token:", f"{shared_streamhub.url}/v1/vhosts/default"],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert json.loads(result.stdout)["response"]["name"] == "default"


def test_swagger_ui_assets_are_served_locally(shared_streamhub):
    page = requests.get(f"{shared_streamhub.url}/api/docs/", timeout=10)
    assert page.status_code == 200
    bundle = requests.get(
        f"{shared_streamhub.url}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js", timeout=10
    )
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    schema = requests.get(f"{shared_streamhub.url}/api/schema/", timeout=10)
    assert schema.status_code == 200 and b"/v1/vhosts/{vhost}/apps" in schema.content


def test_make_run_defaults_answer_unknown_urls_in_each_apis_format(shared_streamhub):
    """Daphne as `make run` starts it (no DEBUG switch set): no debug page, no route list."""
    wcs = requests.post(f"{shared_streamhub.url}/rest-api/no/such", json={}, timeout=10)
    assert wcs.status_code == 404
    assert wcs.json()["message"] == "Not Found" and wcs.json()["path"] == "/rest-api/no/such"
    wcs_v3 = requests.post(f"{shared_streamhub.url}/rest-api/v3/no/such", json={}, timeout=10)
    assert (wcs_v3.status_code, wcs_v3.json()["status"]) == (404, 404)
    ome = requests.get(f"{shared_streamhub.url}/v1/no/such", headers=AUTH, timeout=10)
    assert (ome.status_code, ome.json()["statusCode"]) == (404, 404)
    page = requests.get(f"{shared_streamhub.url}/no/such", timeout=10)
    assert page.status_code == 404 and "rest-api" not in page.text
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    # The admin's static files are still served (WhiteNoise) with DEBUG off.
    css = requests.get(f"{shared_streamhub.url}/static/admin/css/base.css", timeout=10)
    assert css.status_code == 200 and "text/css" in css.headers["Content-Type"]


def test_cached_lists_follow_every_commit(live_streamhub):
    """GET /v1/vhosts and WCS /stream/find_all are computed once per database change (streamhub/db_changes.py):
    a commit by another process (the engine, a worker: `manage.py shell` here) or by the API itself shows
    in the next answer."""
    vhosts = lambda: requests.get(f"{live_streamhub.url}/v1/vhosts", headers=AUTH, timeout=10).json()["response"]  # noqa: E731

    def find_all() -> requests.Response:
        return requests.post(f"{live_streamhub.url}/rest-api/stream/find_all", json={}, timeout=10)

    def shell(code: str) -> None:
        live_streamhub.manage("shell", "-c", code)

    for _ in range(3):  # computed, then answered from the cache
        assert vhosts() == ["default"]
        assert find_all().status_code == 404
    shell("from apps.hosting.models import VirtualHost; VirtualHost.objects.create(name='other')")
    assert vhosts() == ["default", "other"]
    created = requests.post(
        f"{live_streamhub.url}/v1/vhosts",
        json=[{"name": "third", "host": {"names": ["third.example"]}}],
        headers=AUTH,
        timeout=10,
    )
    assert created.status_code == 200, created.text
    assert vhosts() == ["default", "other", "third"]

    shell(
        "from apps.hosting.models import Application; from apps.streams.models import Stream;"
        "Stream.objects.create(application=Application.objects.get(virtual_host__name='default', name='app'),"
        " name='cam', source_type='Rtmp', input_tracks=[{'kind': 'video', 'codec': 'H264', 'width': 640,"
        " 'height': 360, 'bitrate': 800000}])"
    )
    for _ in range(3):
        [stream] = find_all().json()
        assert (stream["name"], stream["width"], stream["bitrate"]) == ("cam", 640, 800)
    shell("from apps.streams.models import Stream; Stream.objects.filter(name='cam').update(input_tracks=[])")
    assert find_all().json()[0]["width"] == 0
    shell("from apps.streams.models import Stream; Stream.objects.filter(name='cam').update(state='ended')")
    assert find_all().status_code == 404


def test_requests_waiting_on_a_pull_hold_up_no_other_request(tmp_path, redis_url):
    """One request at a time per process (STREAMHUB_API_REQUEST_SLOTS=1), yet two OME pull creations,
    each waiting seconds for a pull no worker takes, do not hold up a GET /v1/vhosts: past the slot's
    hold, the next request starts beside them (streamhub/asgi_handler.py)."""
    hub = LiveStreamHub(tmp_path, redis_url)
    hub.env.update({"STREAMHUB_API_REQUEST_SLOTS": "1", "STREAMHUB_PULL_CREATE_WAIT": "4"})
    hub.start()  # the API alone: no worker takes the pulls
    try:
        pulls = f"{hub.url}/v1/vhosts/default/apps/app/streams"
        with ThreadPoolExecutor(2) as pool:
            waiting = [
                pool.submit(
                    requests.post,
                    pulls,
                    json={"name": f"pulled{n}", "urls": [f"rtsp://127.0.0.1:9/{n}"]},
                    headers=AUTH,
                    timeout=30,
                )  # fmt: skip
                for n in range(2)
            ]
            time.sleep(1)
            asked = time.monotonic()
            vhosts = requests.get(f"{hub.url}/v1/vhosts", headers=AUTH, timeout=10)
            answered_in = time.monotonic() - asked
            assert not any(pull.done() for pull in waiting), "the pulls were not waiting any more"
            assert vhosts.status_code == 200 and vhosts.json()["response"] == ["default"]
            assert answered_in < 1.0
            assert [pull.result().status_code for pull in waiting] == [201, 201]
    finally:
        hub.stop()
