"""API request bodies: a size limit answered 413 before the body is read (ASGI), and a JSON depth
limit answered 400, each in the dialect's own format on /v1, /rest-api and /rest-api/v3."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.testing import ApplicationCommunicator

from streamhub.middleware import RequestBodyLimitMiddleware

DEEP = "[" * 100_000 + "]" * 100_000
LIMIT = 1000


class RecordingApp:
    """The application behind the middleware: records the body it got."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(app, path: str, chunks: list[bytes], content_length: int | None = None) -> tuple[dict, dict, int]:
    """Send a request in ``chunks``; (response start, response body, chunks the app had taken)."""
    headers = [(b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "query_string": b""}

    async def scenario():
        communicator = ApplicationCommunicator(app, scope)
        for index, chunk in enumerate(chunks):
            await communicator.send_input({"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1})
        start = await communicator.receive_output(5)
        body = await communicator.receive_output(5)
        taken = len(chunks) - communicator.input_queue.qsize()
        await communicator.wait(5)
        return start, body, taken

    return asyncio.run(scenario())


@pytest.fixture
def small_limit(settings):
    settings.API_MAX_BODY_BYTES = LIMIT


def test_a_declared_oversize_body_is_refused_in_ome_format_before_it_is_read(small_limit):
    inner = RecordingApp()
    start, body, taken = call(RequestBodyLimitMiddleware(inner), "/v1/vhosts", [b"x" * 600] * 4, 2400)
    assert start["status"] == 413
    assert json.loads(body["body"]) == {
        "statusCode": 413,
        "message": f"[HTTP] Request body is larger than {LIMIT} bytes (413)",
    }
    assert taken == 0  # not one chunk read
    assert inner.bodies == []


def test_a_chunked_oversize_body_is_refused_in_wcs_format_once_it_passes_the_limit(small_limit):
    inner = RecordingApp()
    start, body, taken = call(RequestBodyLimitMiddleware(inner), "/rest-api/stream/find", [b"x" * 600] * 4)
    assert start["status"] == 413
    error = json.loads(body["body"])
    assert error["status"] == 413 and error["error"] == "Request Entity Too Large"
    assert error["message"] == f"Request body is larger than {LIMIT} bytes"
    assert error["path"] == "/rest-api/stream/find"
    assert taken == 2  # stopped at the chunk that passed the limit
    assert inner.bodies == []


def test_a_body_within_the_limit_reaches_the_api_whole(small_limit):
    inner = RecordingApp()
    start, _, _ = call(RequestBodyLimitMiddleware(inner), "/rest-api/v3/stream/find", [b"a" * 500, b"b" * 500])
    assert start["status"] == 200
    assert inner.bodies == [b"a" * 500 + b"b" * 500]


def test_other_paths_are_not_limited_here(small_limit):
    inner = RecordingApp()
    start, _, _ = call(RequestBodyLimitMiddleware(inner), "/admin/login/", [b"x" * 5000], 5000)
    assert start["status"] == 200 and inner.bodies == [b"x" * 5000]


# -- JSON depth: Django's test client through the real views ----------------------------------


@pytest.mark.django_db
def test_deep_json_is_a_400_in_the_ome_envelope(ome, settings):
    settings.DEBUG = True  # never Django's technical page either
    response = ome.generic("POST", "/v1/vhosts", DEEP, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "message": "[HTTP] Invalid request body: JSON nested deeper than 64 levels (400)",
    }


@pytest.mark.django_db
def test_json_just_over_the_depth_limit_is_refused_and_within_it_accepted(ome):
    nested = {"providers": {"webrtc": {"x": [[[1]]]}}}
    assert ome.patch("/v1/vhosts/default/apps/app", nested).status_code == 200
    deep = "[" * 65 + "]" * 65
    response = ome.generic("PATCH", "/v1/vhosts/default/apps/app", deep, content_type="application/json")
    assert response.status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/rest-api/stream/find_all", "/rest-api/v3/stream/find_all"])
def test_deep_json_is_a_400_in_the_wcs_format(client, settings, path):
    settings.DEBUG = True
    response = client.generic("POST", path, DEEP, content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400 and body["message"] == "Bad request: JSON nested deeper than 64 levels"
    assert body["path"] == path


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path, body",
    [("/rest-api/stream/event/send", {"streamName": "cam"}), ("/rest-api/data/send", {"sessionId": "s"})],
)
def test_relayed_payloads_are_capped(client, settings, path, body):
    settings.WCS_MAX_EVENT_PAYLOAD_BYTES = 1000
    big = {**body, "payload": {"text": "x" * 2000}}
    response = client.post(path, big, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["message"] == "Bad request: payload: The payload is larger than 1000 bytes of JSON."
    # Within the cap the call goes on to its usual answer (no such stream / connection).
    small = client.post(path, {**body, "payload": {"text": "x" * 10}}, content_type="application/json")
    assert small.status_code in (404, 500)
