"""The states clients see (issue #20 item 4): a running record is "recording" (OME's record states:
ready, recording, stopping, stopped, error) in :records, the CLI and the admin; a running push stays
"started"; the OpenAPI schema names both sets, with StreamHub's "retrying" and "error" documented."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from apps.hosting.models import Application
from apps.jobs.runner import load_and_claim
from apps.push.models import Push
from apps.recording.models import Record

pytestmark = pytest.mark.django_db
APP = "/v1/vhosts/default/apps/app"


@pytest.fixture
def running(db):
    app = Application.objects.get(name="app")
    record = Record.objects.create(application=app, record_id="rec", stream_name="cam")
    push = Push.objects.create(application=app, push_id="out", stream_name="cam", protocol="rtmp", url="rtmp://h/a")
    for job in (record, push):
        worker = load_and_claim(type(job), job.pk, "task")
        worker.mark_started()
    return record, push


def test_a_running_record_is_recording_and_a_running_push_is_started(ome, running):
    [record] = ome.post(f"{APP}:records", {"id": "rec"}).json()["response"]
    [push] = ome.post(f"{APP}:pushes", {"id": "out"}).json()["response"]
    assert (record["state"], push["state"]) == ("recording", "started")

    assert ome.post(f"{APP}:stopRecord", {"id": "rec"}).status_code == 200
    [record] = ome.post(f"{APP}:records", {"id": "rec"}).json()["response"]
    assert record["state"] == "stopping"


def test_the_cli_and_the_admin_say_recording(running, admin_client):
    out = io.StringIO()
    call_command("record", "list", stdout=out)
    assert out.getvalue().split()[:2] == ["rec", "recording"]
    page = admin_client.get("/admin/recording/record/").content.decode()
    assert '<td class="field-record_state">recording</td>' in page


def test_the_openapi_schema_names_each_kinds_states(ome):
    schema = ome.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]
    record_state = components["Record"]["properties"]["state"]
    push_state = components["Push"]["properties"]["state"]
    assert set(resolve(components, record_state)["enum"]) == {"ready", "recording", "stopping", "stopped", "error"}
    push_enum = resolve(components, push_state)
    assert set(push_enum["enum"]) == {"ready", "started", "retrying", "stopping", "stopped", "error"}
    assert "retrying" in push_state.get("description", "") + push_enum.get("description", "")
    for kind in ("Record", "Push"):
        assert "error" in components[kind]["properties"]
        assert "error" not in components[kind].get("required", [])


def resolve(components: dict, prop: dict) -> dict:
    """A property's own schema, following a $ref (drf-spectacular names enums as components)."""
    for part in [prop, *prop.get("allOf", [])]:
        if "$ref" in part:
            return components[part["$ref"].rsplit("/", 1)[1]]
    return prop
