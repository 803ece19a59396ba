"""The media-job lifecycle without a worker: `run_stream_job` and the StreamJob transitions on the
real database. Claim (once, never over a live lease, even for the same task id), lease renewal and
loss, orphan resume, stop (also when it lands between the worker's read and its write), errors.
The media functions here stand in for the media code (which the integration tests run for real)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.engine.models import EngineNode
from apps.hosting.models import Application
from apps.jobs import runner
from apps.jobs.choices import JobState
from apps.jobs.runner import JobFailed, StopCheck, load_and_claim, run_stream_job
from apps.jobs.services import resume_orphaned_jobs
from apps.jobs.signals import job_state_changed
from apps.mixing.models import Mixer
from apps.multi_recorder.models import MultiRecorder
from apps.pull.models import Pull
from apps.push.models import Push
from apps.push.services import stop_push
from apps.push.tasks import PushJob
from apps.recording.models import Record
from apps.recording.services import stop_record
from apps.recording.tasks import RecordJob
from apps.streams.models import Stream
from media_engine.jobs.events import MediaEvent
from media_engine.jobs.source import SourceUnavailable

pytestmark = pytest.mark.django_db


@pytest.fixture
def app() -> Application:
    return Application.objects.get(name="app")


@pytest.fixture
def node() -> EngineNode:
    return EngineNode.objects.create(
        node_id="node-a", hostname="a", rtmp_port=1935, media_http_port=3333, last_heartbeat=timezone.now()
    )


@pytest.fixture
def live(app, node) -> Stream:
    return Stream.objects.create(application=app, name="cam", source_type="Rtmp", node=node)


@pytest.fixture
def record(app) -> Record:
    return Record.objects.create(application=app, record_id="r1", stream_name="cam")


@pytest.fixture
def push(app) -> Push:
    return Push.objects.create(application=app, push_id="p1", stream_name="cam", protocol="rtmp", url="rtmp://h/a")


def state_of(job) -> str:
    job.refresh_from_db()
    return job.state


def age_lease(job, seconds: float = 3600) -> None:
    """As if its worker had stopped renewing the lease ``seconds`` ago (killed, machine gone)."""
    type(job).objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


def until_stopped(job, where, should_stop) -> None:
    while not should_stop():
        pass


# -- claim -----------------------------------------------------------------------------------------


def test_a_ready_job_is_claimed_once_and_a_second_delivery_of_the_same_task_does_nothing(record):
    worker = load_and_claim(Record, record.pk, "task-1")
    assert isinstance(worker, Record) and worker.state == JobState.STARTED and worker.held_lease
    # Redis restored the unacknowledged task: the same task id comes again while the first runs.
    assert load_and_claim(Record, record.pk, "task-1") == "already running"
    assert load_and_claim(Record, record.pk, "task-2") == "already running"
    record.refresh_from_db()
    assert (record.lease_token, record.celery_task_id) == (worker.held_lease, "task-1")


def test_a_job_whose_lease_ran_out_is_taken_over_and_its_old_worker_can_write_nothing(record):
    old = load_and_claim(Record, record.pk, "task-1")
    age_lease(record)
    new = load_and_claim(Record, record.pk, "task-2")
    assert isinstance(new, Record) and new.held_lease != old.held_lease

    assert old.beat() is False
    assert old.mark_started() is False
    assert old.mark_error("late failure") is False
    assert old.held().update(record_bytes=1) == 0
    assert new.mark_started() is True
    record.refresh_from_db()
    assert (record.state, record.error, record.record_bytes) == (JobState.STARTED, "", 0)


def test_finished_or_deleted_jobs_are_gone(record):
    record.request_stop()
    assert load_and_claim(Record, record.pk, "t") == "gone"
    assert load_and_claim(Record, 999_999, "t") == "gone"


# -- lease renewal -----------------------------------------------------------------------------------


def test_the_stop_check_renews_the_lease_at_most_every_renewal_period(record):
    worker = load_and_claim(Record, record.pk, "task-1")
    now = [100.0]
    check = StopCheck(worker, clock=lambda: now[0])
    age_lease(record, seconds=1)
    assert check() is False
    renewed = Record.objects.get(pk=record.pk).heartbeat_at
    assert renewed > timezone.now() - timedelta(seconds=1)

    age_lease(record, seconds=1)
    now[0] += StopCheck.LEASE_RENEWAL / 2
    assert check() is False
    assert Record.objects.get(pk=record.pk).heartbeat_at < renewed  # not renewed yet
    now[0] += StopCheck.LEASE_RENEWAL
    assert check() is False
    assert Record.objects.get(pk=record.pk).heartbeat_at >= renewed


def test_the_stop_check_says_stop_once_another_worker_holds_the_job(record):
    old = load_and_claim(Record, record.pk, "task-1")
    check = StopCheck(old)
    assert check() is False
    age_lease(record)
    assert isinstance(load_and_claim(Record, record.pk, "task-2"), Record)
    assert check() is True and check.lost


# -- stop ----------------------------------------------------------------------------------------------


def test_a_stop_between_the_workers_read_and_its_mark_started_wins(record, live):
    """The record task has read the row (claimed it) when the API's stop lands; its mark_started
    comes after and must not overwrite STOPPING with STARTED (the job would never stop)."""

    def media(job: Record, stream, should_stop) -> None:
        stop_record(Record.objects.get(pk=job.pk))  # the API, in between
        RecordJob(job, stream, "task-1", should_stop).run()  # mark_started, then the recorder

    assert run_stream_job(Record, record.pk, media, "task-1") == "stopped"
    record.refresh_from_db()
    assert (record.state, record.lease_token) == (JobState.STOPPED, "")
    assert record.started_at is None and record.finished_at is not None


def test_a_push_reconnecting_after_a_stop_does_not_undo_the_stop(push, live):
    worker = load_and_claim(Push, push.pk, "task-1")
    glue = PushJob(worker)
    glue.on_state(MediaEvent.STARTED, None)
    assert state_of(push) == JobState.STARTED and push.started_at is not None
    glue.on_state(MediaEvent.RETRYING, "connection refused")
    assert (state_of(push), push.error) == (JobState.RETRYING, "connection refused")
    glue.on_state(MediaEvent.STARTED, None)  # reconnected: the next sequence
    assert (state_of(push), push.sequence, push.error) == (JobState.STARTED, 1, "")

    glue.on_state(MediaEvent.RETRYING, "dropped")
    stop_push(Push.objects.get(pk=push.pk))
    glue.on_state(MediaEvent.STARTED, None)  # the reconnection lands after the stop
    assert (state_of(push), push.sequence) == (JobState.STOPPING, 1)


def test_a_running_job_stops_when_asked(record, live):
    def media(job, stream, should_stop) -> None:
        stop_record(Record.objects.get(pk=job.pk))
        until_stopped(job, stream, should_stop)

    assert run_stream_job(Record, record.pk, media, "t") == "stopped"
    assert state_of(record) == JobState.STOPPED


def test_a_stop_of_a_job_that_is_not_running_stops_it_at_once(record):
    assert record.request_stop() is True
    assert (record.state, record.finished_at is not None) == (JobState.STOPPED, True)
    assert record.request_stop() is False  # already stopped: nothing changes


def test_a_job_whose_stream_ended_waits_reserved_and_lets_go_of_its_lease(record, live):
    assert run_stream_job(Record, record.pk, lambda *args: None, "t") == "waiting"
    record.refresh_from_db()
    assert (record.state, record.lease_token) == (JobState.READY, "")


def test_a_job_without_its_live_stream_waits(record):
    assert run_stream_job(Record, record.pk, lambda *args: pytest.fail("ran without a stream"), "t") == "waiting"
    assert state_of(record) == JobState.READY


# -- errors --------------------------------------------------------------------------------------------


def test_a_failing_media_leaves_the_job_in_error_with_the_reason(record, live):
    def media(*args) -> None:
        raise RuntimeError("disk full")

    assert run_stream_job(Record, record.pk, media, "t") == "error"
    record.refresh_from_db()
    assert (record.state, record.error, record.lease_token) == (JobState.ERROR, "disk full", "")


def test_a_stream_that_cannot_be_read_makes_the_job_wait_and_say_why(record, live):
    def media(*args) -> None:
        raise SourceUnavailable("connection refused")

    assert run_stream_job(Record, record.pk, media, "t") == "waiting"
    record.refresh_from_db()
    assert record.state == JobState.READY
    assert record.error == "cannot read the stream from its engine node: connection refused"


def test_a_job_that_needs_no_stream_gets_an_engine_node_and_stops_with_its_reason(app, node):
    pull = Pull.objects.create(application=app, stream_name="pulled", urls=["rtsp://h/cam"], source_type="RtspPull")
    seen = []

    def media(job, where, should_stop) -> str:
        seen.append(where)
        return "no source is left"

    assert run_stream_job(Pull, pull.pk, media, "t") == "stopped"
    pull.refresh_from_db()
    assert seen == [node] and (pull.state, pull.error) == (JobState.STOPPED, "no source is left")

    failing = Pull.objects.create(application=app, stream_name="p2", urls=["rtsp://h/x"], source_type="RtspPull")

    def fails(*args) -> None:
        raise JobFailed("Failed to pull provided URL: 404")

    assert run_stream_job(Pull, failing.pk, fails, "t") == "error"
    assert (state_of(failing), failing.error) == (JobState.ERROR, "Failed to pull provided URL: 404")


def test_a_job_waiting_for_an_engine_node_stops_when_asked(app, monkeypatch):
    mixer = Mixer.objects.create(application=app, stream_name="mix", uri="mixer://m")
    monkeypatch.setattr(runner, "NO_NODE_RETRY", 0.01)
    calls = []

    def no_node_then_stop():
        calls.append(1)
        if len(calls) == 2:
            mixer.request_stop()
        return None

    monkeypatch.setattr(EngineNode, "for_new_streams", staticmethod(no_node_then_stop))
    assert run_stream_job(Mixer, mixer.pk, lambda *args: pytest.fail("ran without a node"), "t") == "stopped"
    assert state_of(mixer) == JobState.STOPPED


def test_a_job_that_needs_neither_stream_nor_node_runs_on_nothing(app):
    recorder = MultiRecorder.objects.create(application=app, stream_name="room", uri="multi-recorder://room")
    seen = []

    def media(job, where, should_stop) -> None:
        seen.append(where)
        job.mark_started()
        job.request_stop()
        until_stopped(job, where, should_stop)

    assert run_stream_job(MultiRecorder, recorder.pk, media, "t") == "stopped"
    recorder.refresh_from_db()
    assert seen == [None] and recorder.state == JobState.STOPPED and recorder.started_at is not None


# -- orphan resume ---------------------------------------------------------------------------------


def test_orphans_are_queued_again_once_per_lease_and_stopping_ones_stop(
    record, push, app, live, django_capture_on_commit_callbacks
):
    for job in (record, push):
        load_and_claim(type(job), job.pk, "dead-worker")
    stopping = Record.objects.create(application=app, record_id="r2", stream_name="cam")
    load_and_claim(Record, stopping.pk, "dead-worker")
    stopping.request_stop()
    alive = Record.objects.create(application=app, record_id="r3", stream_name="cam")
    load_and_claim(Record, alive.pk, "live-worker")
    for job in (record, push, stopping):
        age_lease(job)

    with django_capture_on_commit_callbacks() as queued:
        assert resume_orphaned_jobs() == 2
    assert len(queued) == 2
    for job in (record, push):
        job.refresh_from_db()
        assert (job.state, job.lease_token) == (JobState.READY, "")
        assert job.error == "its worker stopped: started again"
    assert (state_of(stopping), state_of(alive)) == (JobState.STOPPED, JobState.STARTED)

    with django_capture_on_commit_callbacks() as queued:
        assert resume_orphaned_jobs() == 0  # queued already within this lease period
    assert queued == []
    assert isinstance(load_and_claim(Record, record.pk, "new-worker"), Record)


def test_an_orphan_whose_stream_is_gone_stays_reserved(record):
    load_and_claim(Record, record.pk, "dead-worker")
    age_lease(record)
    assert resume_orphaned_jobs() == 0
    assert state_of(record) == JobState.READY


# -- events --------------------------------------------------------------------------------------------


def test_every_applied_transition_is_announced_and_a_refused_one_is_not(push):
    heard = []

    def listener(sender, job, fields, **kwargs) -> None:
        heard.append((sender, job.state))

    job_state_changed.connect(listener, sender=Push, weak=False, dispatch_uid="test-listener")
    try:
        worker = load_and_claim(Push, push.pk, "t")
        worker.mark_retrying("refused")
        push.request_stop()
        worker.mark_connected()  # refused: a stop is pending
        worker.mark_stopped()
    finally:
        job_state_changed.disconnect(sender=Push, dispatch_uid="test-listener")
    assert heard == [
        (Push, JobState.STARTED),
        (Push, JobState.RETRYING),
        (Push, JobState.STOPPING),
        (Push, JobState.STOPPED),
    ]


def test_a_failing_listener_cannot_undo_or_block_a_transition(push):
    def broken(sender, **kwargs) -> None:
        raise RuntimeError("listener bug")

    job_state_changed.connect(broken, sender=Push, weak=False, dispatch_uid="test-broken")
    try:
        assert push.request_stop() is True
    finally:
        job_state_changed.disconnect(sender=Push, dispatch_uid="test-broken")
    assert state_of(push) == JobState.STOPPED


def test_a_v3_call_waiting_for_a_push_hears_the_workers_transition(push):
    """WCS v3 waiters listen to job_state_changed: the worker's conditional UPDATEs reach them
    although no model is saved."""
    from apps.async_jobs import services
    from apps.async_jobs.choices import JobState as CallState
    from apps.async_jobs.models import Job
    from apps.async_jobs.operations import OPERATIONS, Done, Operation, Started, register_operation

    def check(request, handle):
        return Done({"state": "started"}) if Push.objects.get(pk=handle["push"]).state == JobState.STARTED else None

    before = dict(OPERATIONS)
    register_operation(
        "test/push", Operation(lambda request: Started(None, {"push": push.pk}, f"push:{push.pk}"), check)
    )
    try:
        call = Job.new("test/push", {}, 60)
        services.run_job(str(call.pk))
        assert state_of(call) == CallState.RUNNING
        load_and_claim(Push, push.pk, "t")  # the worker takes the push: STARTED
        assert (state_of(call), call.result) == (CallState.DONE, {"state": "started"})
    finally:
        OPERATIONS.clear()
        OPERATIONS.update(before)
