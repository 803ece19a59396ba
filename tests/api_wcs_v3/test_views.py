"""WCS REST API v3 without a worker: every v2 method is routed under /rest-api/v3/, short methods
answer as v2 does, bad bodies of long methods are 400s that create no job, /jobs/find and
/jobs/<id> show Job objects, Basic auth and CORS apply, the Prefer header is read as WCS documents,
and the middleware chain stays async (a waiting call holds no thread). Jobs with a real worker are
in tests/integration/test_wcs_v3.py."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient, RequestFactory
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.api_wcs.urls import METHODS
from apps.api_wcs_v3.operations import LONG_METHODS, is_long
from apps.api_wcs_v3.prefer import parse_prefer
from apps.api_wcs_v3.presenters import job_answer
from apps.async_jobs.models import Job
from apps.async_jobs.services import cancel_if_overdue, wait_for_job

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def in_event_loop(test):
    """Run an async test in an event loop (as Daphne runs the views), with its fixtures."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return async_to_sync(test)(*args, **kwargs)

    return run


V3 = "/rest-api/v3"


@pytest.fixture
def client() -> AsyncClient:
    return AsyncClient()


async def post(client: AsyncClient, method: str, body=None, **headers):
    data = body if isinstance(body, str | bytes) else json.dumps(body or {})
    return await client.post(f"{V3}/{method}", data, content_type="application/json", headers=headers)


@in_event_loop
async def test_a_short_method_answers_as_v2(client):
    v3 = await post(client, "stream/find_all")
    v2 = await client.post("/rest-api/stream/find_all", "{}", content_type="application/json")
    assert v3.status_code == v2.status_code == 404
    assert {**v3.json(), "timestamp": 0, "path": ""} == {**v2.json(), "timestamp": 0, "path": ""}
    assert v3.json()["path"] == "/rest-api/v3/stream/find_all"


@in_event_loop
async def test_every_v2_method_is_routed_in_v3(client):
    for method in METHODS:
        response = await client.get(f"{V3}/{method.route}")
        # Routed; POST only, as v2, but for GET /stream/find_all (WCS lists it as GET): no stream, 404.
        expected = 404 if method.route == "stream/find_all" else 405
        assert response.status_code == expected, method.route
        assert response.json()["status"] == expected


def test_the_long_methods_are_v2_methods():
    routes = {method.route for method in METHODS}
    assert set(LONG_METHODS) <= routes
    assert {route for route in routes if is_long(next(m for m in METHODS if m.route == route))} >= {
        "vod/startup",
        "rtsp/startup",
        "pull/rtmp/pull",
        "push/startup",
    }


@in_event_loop
async def test_bad_input_to_a_long_method_is_a_400_and_creates_no_job(client):
    response = await post(client, "vod/startup", {"localStreamName": "x"})
    assert response.status_code == 400
    assert response.json()["message"] == "Bad request: uri: This field is required."
    response = await post(client, "rtsp/startup", "[1, 2]")
    assert (response.status_code, response.json()["message"]) == (400, "Bad request: the body must be a JSON object")
    response = await post(client, "push/startup", "{not json")
    assert (response.status_code, response.json()["message"]) == (400, "Bad request: the body is not JSON")
    # The body is stored with the job: a NUL in an unknown field (PostgreSQL cannot store it) is refused too.
    response = await post(client, "vod/startup", {"uri": "vod-live://sample.mp4", "x\u0000": ["\u0000"]})
    assert (response.status_code, response.json()["message"]) == (400, "Bad request: null characters are not allowed")
    assert await Job.objects.acount() == 0


@in_event_loop
async def test_jobs_find_filters_by_id_state_and_method(client):
    done = await Job.objects.acreate(method="vod/startup", request={"uri": "vod-live://a.mp4"}, state="DONE",
                                     timeout_seconds=60, deadline="2030-01-01T00:00:00Z")  # fmt: skip
    await Job.objects.acreate(method="rtsp/startup", request={}, timeout_seconds=60, deadline="2030-01-01T00:00:00Z")
    [job] = (await post(client, "jobs/find", {"state": "DONE"})).json()
    assert (
        job["id"] == str(done.pk) and job["method"] == "vod/startup" and job["request"] == {"uri": "vod-live://a.mp4"}
    )
    assert set(job) == {"id", "method", "state", "request", "result", "error", "createdTime", "startedTime",
                        "finishedTime"}  # fmt: skip
    assert [j["method"] for j in (await post(client, "jobs/find", {"method": "rtsp/startup"})).json()] == [
        "rtsp/startup"
    ]
    assert len((await post(client, "jobs/find", {"id": str(done.pk)})).json()) == 1
    assert len((await post(client, "jobs/find")).json()) == 2
    missing = await post(client, "jobs/find", {"id": "not-a-job"})
    assert (missing.status_code, missing.json()["message"]) == (404, "Jobs not found")
    bad = await post(client, "jobs/find", {"state": "SLEEPING"})
    assert bad.status_code == 400 and bad.json()["message"].startswith("Bad request: state:")


@in_event_loop
async def test_a_job_is_at_its_location(client):
    job = await Job.objects.acreate(method="vod/startup", request={}, timeout_seconds=60, deadline="2030-01-01T00:00Z")
    response = await client.get(f"{V3}/jobs/{job.pk}")
    assert response.status_code == 200 and response.json()["state"] == "PENDING"
    response = await client.get(f"{V3}/jobs/00000000-0000-0000-0000-000000000000")
    assert (response.status_code, response.json()["message"]) == (404, "Job not found")


@in_event_loop
async def test_a_job_cancelled_by_its_timeout_within_the_wait_answers_200_with_the_job():
    # A long call waits for its job (wait=5); the job's deadline (timeout=1) cancels it meanwhile.
    past = timezone.now() - timedelta(seconds=1)
    job = await Job.objects.acreate(method="rtsp/startup", request={"uri": "rtsp://127.0.0.1:9/cam"},
                                    timeout_seconds=1, deadline=past)  # fmt: skip
    waiting = asyncio.create_task(wait_for_job(job.pk, 5))
    await asyncio.sleep(0.3)
    assert await sync_to_async(cancel_if_overdue)(str(job.pk))  # what the deadline task does
    finished = await asyncio.wait_for(waiting, 4)  # woken by the cancellation, not by the wait's end
    response = job_answer(RequestFactory().post(f"{V3}/rtsp/startup"), finished)
    assert response.status_code == 200  # not 504: WCS answers 200 or 202
    body = json.loads(response.content)
    assert (body["id"], body["state"], body["error"]) == (
        str(job.pk),
        "CANCELLED",
        "Not done within its timeout of 1 s",
    )
    assert body["finishedTime"] is not None
    assert response["Location"] == f"{V3}/jobs/{job.pk}"


@in_event_loop
async def test_basic_auth_applies_when_enabled(client, settings):
    settings.WCS_REST_AUTH = True
    await User.objects.acreate_user("wcs", password="wcs-password-1")
    refused = await post(client, "rtsp/startup", {"uri": "rtsp://127.0.0.1/x"})
    assert refused.status_code == 401 and refused["WWW-Authenticate"] == 'Basic realm="WCS REST API"'
    assert await Job.objects.acount() == 0
    wrong = "Basic " + base64.b64encode(b"wcs:nope").decode()
    assert (await post(client, "jobs/find", authorization=wrong)).status_code == 401
    right = "Basic " + base64.b64encode(b"wcs:wcs-password-1").decode()
    assert (await post(client, "jobs/find", authorization=right)).status_code == 404  # in: no jobs yet


@in_event_loop
async def test_cors_applies_to_v3(client):
    response = await client.options(
        f"{V3}/vod/startup", headers={"Origin": "http://player.example", "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 200 and response["Access-Control-Allow-Origin"] == "*"
    assert (await post(client, "stream/find_all"))["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    ("header", "wait", "timeout", "respond_async"),
    [
        (None, 5, 60, False),  # missing: the server's caps
        ("respond-async, wait=3, timeout=10", 3, 10, True),  # WCS's example
        ("wait=30, timeout=600", 5, 60, False),  # above the caps: the caps
        ("respond-async; foo=bar, wait=0", 0, 60, True),  # wait=0: answer 202 at once
        ("wait=soon, timeout=-1", 5, 60, False),  # not numbers: ignored
        ('timeout=0, WAIT="2"', 2, 60, False),  # a zero timeout is ignored; names are case-blind
    ],
)
def test_the_prefer_header(header, wait, timeout, respond_async):
    prefer = parse_prefer(header, 5, 60)
    assert (prefer.wait, prefer.timeout, prefer.respond_async) == (wait, timeout, respond_async)


def test_the_middleware_chain_is_async(settings):
    # One sync-only middleware would make Django run every request in a thread that blocks while v3 waits.
    sync_only = [path for path in settings.MIDDLEWARE if not getattr(import_string(path), "async_capable", False)]
    assert sync_only == []
