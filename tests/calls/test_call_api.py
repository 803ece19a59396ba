"""WCS /call/* without a SIP peer: what the API stores, refuses and queues (request -> status ->
body -> row). The calls themselves, against sipp, are in tests/integration/test_sip_calls.py."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.calls.choices import CallStatus, CommandKind
from apps.calls.models import Call, CallCommand
from apps.jobs.choices import JobState

pytestmark = pytest.mark.django_db
API = "/rest-api/call"
CALL = {"callId": "c1", "callee": "100", "sipDomain": "pbx.example.com", "sipPort": 5070, "sipLogin": "alice",
        "sipPassword": "s3cret", "toStream": "phone", "rtmpUrl": "rtmp://cdn.example.com/live", "rtmpStream": "s1"}  # fmt: skip


def post(wcs, method: str, body: dict):
    return wcs.post(f"{API}/{method}", body)


def established(call: Call) -> Call:
    call.state = JobState.STARTED
    call.set_status(CallStatus.ESTABLISHED)
    call.save()
    return call


def test_startup_stores_the_call_and_find_shows_it_without_the_password(wcs):
    response = post(wcs, "startup", CALL)
    assert response.status_code == 200 and response.content == b""
    call = Call.objects.get()
    assert (call.call_id, call.callee, call.sip_domain, call.sip_port, call.stream_name) == (
        "c1",
        "100",
        "pbx.example.com",
        5070,
        "phone",
    )
    assert (call.state, call.status, call.push_target) == (
        JobState.READY,
        CallStatus.PENDING,
        "rtmp://cdn.example.com/live/s1",
    )

    [found] = post(wcs, "find", {"callee": "100", "status": "pending"}).json()
    assert found["callId"] == "c1" and found["status"] == "PENDING" and found["caller"] == "alice@pbx.example.com"
    assert found["toStream"] == "phone" and found["rtmpUrl"] == "rtmp://cdn.example.com/live"
    assert "sipPassword" not in found and "s3cret" not in str(found)
    assert post(wcs, "find_all", {}).json() == [found]
    nothing = post(wcs, "find", {"status": "ESTABLISHED"})
    assert (nothing.status_code, nothing.json()["message"]) == (404, "Call not found")


def test_a_second_live_call_with_the_same_call_id_or_rtmp_url_is_a_conflict(wcs):
    assert post(wcs, "startup", CALL).status_code == 200
    for body in (
        {**CALL, "toStream": "other", "rtmpUrl": ""},  # same callId
        {**CALL, "callId": "c2", "toStream": "other"},  # same rtmpUrl (and stream)
        {**CALL, "callId": "c3", "rtmpUrl": ""},  # its toStream is taken
    ):
        response = post(wcs, "startup", body)
        assert (response.status_code, response.json()["message"]) == (409, "Conflict")
    assert Call.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sipDomain": ""}, "Bad request: sipDomain: This field may not be blank."),
        ({"sipDomain": "pbx example"}, "Bad request: sipDomain must be a host name or address"),
        ({"sipPort": 70000}, "Bad request: sipPort must be between 1 and 65535"),
        (
            {"rtmpUrl": "http://cdn.example.com/live"},
            "Bad request: a rtmp push needs a rtmp:// or rtmps:// URL, "
            "not 'http://cdn.example.com/live' (expected rtmp://host[:port]/app[/stream])",
        ),
        ({"sipRegisterRequired": True, "sipPassword": ""}, "Bad request: sipRegisterRequired needs sipPassword"),
        ({"callee": ""}, None),
    ],
)
def test_startup_refuses_a_call_it_cannot_place_and_stores_nothing(wcs, change, message):
    response = post(wcs, "startup", {**CALL, **change})
    assert response.status_code == 400
    if message:
        assert response.json()["message"] == message
    assert not Call.objects.exists()


def test_terminate_ends_a_call_no_worker_took_and_then_it_is_gone(wcs):
    post(wcs, "startup", CALL)
    assert post(wcs, "terminate", {"callId": "c1"}).status_code == 200
    call = Call.objects.get()
    assert (call.state, call.status, call.reason) == (
        JobState.STOPPED,
        CallStatus.FAILED,
        "Terminated before it was placed",
    )
    assert post(wcs, "terminate", {"callId": "c1"}).status_code == 404
    # Ended: the callId and the rtmpUrl are free again.
    assert post(wcs, "startup", CALL).status_code == 200


def test_send_dtmf_queues_digits_for_an_established_call_only(wcs):
    post(wcs, "startup", CALL)
    ringing = post(wcs, "send_dtmf", {"callId": "c1", "dtmf": "1"})
    assert (ringing.status_code, ringing.json()["message"]) == (
        500,
        "Internal error: the call is not established (PENDING)",
    )
    call = established(Call.objects.get())
    assert post(wcs, "send_dtmf", {"callId": "c1", "dtmf": "12#", "type": "INFO"}).status_code == 200
    assert post(wcs, "send_dtmf", {"callId": "c1", "dtmf": "*"}).status_code == 200
    assert post(wcs, "send_dtmf", {"callId": "c1", "dtmf": "12x"}).status_code == 400
    assert post(wcs, "send_dtmf", {"callId": "c1", "dtmf": "1", "type": "SMOKE"}).status_code == 400
    commands = [(command.kind, command.arguments) for command in CallCommand.objects.filter(call=call)]
    assert commands == [
        (CommandKind.DTMF, {"digits": "12#", "method": "info"}),
        (CommandKind.DTMF, {"digits": "*", "method": "rfc2833"}),
    ]


def test_inject_sound_takes_only_a_file_under_the_media_root(wcs, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "hello.wav").write_bytes(b"RIFF")
    post(wcs, "startup", CALL)
    call = established(Call.objects.get())
    for name in ("missing.wav", "../hello.wav", "/etc/passwd"):
        response = post(wcs, "inject_sound", {"callId": "c1", "fileName": name})
        assert (response.status_code, response.json()["message"]) == (404, "File not found")
    assert post(wcs, "inject_sound", {"callId": "c1", "fileName": "hello.wav"}).status_code == 200
    [command] = CallCommand.objects.filter(call=call)
    assert command.arguments == {"kind": "sound", "source": str(tmp_path / "hello.wav")}
    call.refresh_from_db()
    assert call.injecting == "sound"
    assert post(wcs, "inject_stream/terminate", {"callId": "c1"}).status_code == 200
    call.refresh_from_db()
    assert call.injecting == ""


def test_inject_stream_needs_a_live_stream(wcs):
    post(wcs, "startup", CALL)
    response = post(wcs, "inject_stream/startup", {"callId": "c1", "streamName": "nothing"})
    assert (response.status_code, response.json()["message"]) == (404, "Stream not found")


def test_an_ended_call_stays_findable_for_a_while(wcs, settings):
    settings.SIP_CALL_HISTORY_SECONDS = 60
    post(wcs, "startup", CALL)
    call = Call.objects.get()
    call.set_status(CallStatus.FAILED, "486 Busy Here")
    Call.objects.filter(pk=call.pk).update(state=JobState.ERROR, finished_at=timezone.now())
    [found] = post(wcs, "find", {"status": "FAILED"}).json()
    assert found["sipMessage"] == "486 Busy Here"
    Call.objects.update(
        ended_at=timezone.now() - timedelta(minutes=2), finished_at=timezone.now() - timedelta(minutes=2)
    )
    assert post(wcs, "find_all", {}).status_code == 404


def test_the_admin_lists_calls_with_status_far_end_and_duration(admin_client):
    from apps.hosting.models import Application

    call = Call.objects.create(application=Application.objects.get(name="app"), call_id="c9", callee="200",
                               sip_domain="pbx.example.com", far_end="sip:200@pbx.example.com")  # fmt: skip
    established(call)
    Call.objects.filter(pk=call.pk).update(established_at=timezone.now() - timedelta(seconds=75))
    page = admin_client.get("/admin/calls/call/").content.decode()
    assert "c9" in page and "sip:200@pbx.example.com" in page and "Established" in page
    # 75 s when the row was written; the page may take a few seconds on a loaded machine.
    assert re.search(r"0:01:(1[5-9]|2\d)", page), re.findall(r"\d+:\d\d:\d\d", page)
    detail = admin_client.get(f"/admin/calls/call/{call.pk}/change/").content.decode()
    assert "s3cret" not in detail and "sip_password" not in detail


def test_the_metrics_count_calls_by_status_and_as_media_jobs(client, wcs):
    from tests.metrics.test_metrics import labels, scrape

    post(wcs, "startup", CALL)
    established(Call.objects.get())
    post(wcs, "startup", {**CALL, "callId": "c2", "toStream": "", "rtmpUrl": ""})
    samples = scrape(client)
    assert samples[("streamhub_sip_calls", labels(status="ESTABLISHED"))] == 1
    assert samples[("streamhub_sip_calls", labels(status="PENDING"))] == 1
    assert samples[("streamhub_sip_calls", labels(status="FAILED"))] == 0
    assert samples[("streamhub_jobs", labels(kind="call", state="started"))] == 1


def test_a_call_whose_worker_died_while_hanging_up_ends_finished(wcs):
    from apps.jobs.services import resume_orphaned_jobs

    post(wcs, "startup", CALL)
    call = established(Call.objects.get())
    assert post(wcs, "terminate", {"callId": "c1"}).status_code == 200
    Call.objects.filter(pk=call.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    resume_orphaned_jobs()
    call.refresh_from_db()
    assert (call.state, call.status, call.reason) == (JobState.STOPPED, CallStatus.FINISHED, "Terminated")


def test_the_job_history_prune_removes_a_calls_log_with_its_row(wcs, settings, tmp_path):
    from apps.jobs.tasks import prune_finished_jobs

    settings.VAR_DIR = tmp_path
    settings.JOB_HISTORY_DAYS = 1
    assert post(wcs, "startup", CALL).status_code == 200
    assert post(wcs, "startup", {**CALL, "callId": "c2", "toStream": "", "rtmpUrl": ""}).status_code == 200
    old, recent = Call.objects.order_by("pk")
    folder = tmp_path / "sip"
    folder.mkdir()
    for call in (old, recent):
        (folder / f"call-{call.pk}.log").write_text("PJSIP log")
    (folder / f"call-{old.pk}.log.1").write_text("PJSIP log, older part")
    Call.objects.filter(pk=old.pk).update(state=JobState.STOPPED, finished_at=timezone.now() - timedelta(days=2))
    Call.objects.filter(pk=recent.pk).update(state=JobState.STOPPED, finished_at=timezone.now())

    assert prune_finished_jobs() >= 1
    assert list(Call.objects.all()) == [recent]
    assert sorted(path.name for path in folder.iterdir()) == [f"call-{recent.pk}.log"]
