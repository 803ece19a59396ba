"""A browser page on another origin calls the WCS API with Basic auth on (issue #20 item 9): Chromium
makes the real CORS preflight (Authorization is a non-simple header), the calls go through with
credentials, and the page reads v3's `Location` and `Preference-Applied` headers."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.conftest import LiveStreamHub

pytestmark = pytest.mark.services

PLAYER_PAGE = b"<!doctype html><title>player</title><p>a WCS web client</p>"


class PlayerPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PLAYER_PAGE)))
        self.end_headers()
        self.wfile.write(PLAYER_PAGE)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def player_origin():
    """A page served from its own origin (another port of this machine: cross-origin to the API)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), PlayerPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def wcs_with_auth(tmp_path, redis_url, player_origin):
    server = LiveStreamHub(tmp_path, redis_url)
    server.env["STREAMHUB_WCS_REST_AUTH"] = "1"
    server.env["STREAMHUB_WCS_CORS_ALLOW_ORIGIN"] = player_origin
    server.manage("createsuperuser", "--noinput", "--username", "operator", "--email", "operator@example.com")
    server.start()  # the API only: no worker takes the v3 job, so it answers 202 at once (wait=0)
    yield server
    server.stop()


CALL = """async ([url, auth, method, body, prefer]) => {
    const headers = {"Authorization": auth};
    if (body !== null) headers["Content-Type"] = "application/json";
    if (prefer !== null) headers["Prefer"] = prefer;
    try {
        const response = await fetch(url, {
            method, headers, credentials: "include", body: body === null ? undefined : JSON.stringify(body),
        });
        return {
            status: response.status, body: await response.json(),
            location: response.headers.get("Location"), applied: response.headers.get("Preference-Applied"),
        };
    } catch (error) {
        return {error: String(error)};  // what a CORS refusal looks like to page code
    }
}"""


def test_a_page_on_another_origin_calls_wcs_with_basic_auth(browser_page, wcs_with_auth, player_origin):
    auth = "Basic " + base64.b64encode(b"operator:operator-password-1").decode()
    browser_page.goto(player_origin + "/")

    def call(path: str, method: str = "POST", body=None, prefer=None) -> dict:
        return browser_page.evaluate(CALL, [f"{wcs_with_auth.url}{path}", auth, method, body, prefer])

    found = call("/rest-api/stream/find", body={"name": "nothing"})
    assert "error" not in found, found
    assert (found["status"], found["body"]["message"]) == (404, "Stream not found")  # authenticated, read

    listed = call("/rest-api/stream/find_all", method="GET")
    assert (listed.get("status"), listed.get("body", {}).get("message")) == (404, "Streams not found"), listed

    job = call("/rest-api/v3/rtsp/startup", body={"uri": "rtsp://127.0.0.1:9/cam", "localStreamName": "cam"},
               prefer="respond-async, wait=0")  # fmt: skip
    assert job.get("status") == 202, job
    assert job["location"] == f"/rest-api/v3/jobs/{job['body']['id']}"
    assert job["applied"] == "respond-async, wait=0"
    # (Wrong credentials answer 401 with WWW-Authenticate, as WCS does: a browser then asks its user,
    # which a headless page cannot answer; tests/api_wcs covers those answers.)
