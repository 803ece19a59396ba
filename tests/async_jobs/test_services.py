"""Jobs through their life in one process, on the real database and Redis Channels layer: an
operation run by `run_job` ends DONE or FAILED, a waiting job ends on its event, cancellation
stops what was started (also when it comes in the middle of the start), overdue and old jobs are
swept, and `wait_for_job` wakes on the job's announcement."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from apps.async_jobs import services
from apps.async_jobs.choices import JobState
from apps.async_jobs.models import Job
from apps.async_jobs.operations import OPERATIONS, Done, JobFailed, Operation, Started, register_operation

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


class Camera:
    """What the test operations start: a thing that is connecting until told it is up."""

    def __init__(self) -> None:
        self.up = False
        self.stopped: list[dict] = []


@pytest.fixture
def camera():
    thing = Camera()
    before = dict(OPERATIONS)

    def start(request: dict) -> Started:
        if request.get("fail"):
            raise JobFailed(404, "Stream not found")
        if request.get("instant"):
            return Started({"echo": request["instant"]})
        return Started({"name": request["name"]}, {"camera": request["name"]}, f"camera:{request['name']}")

    def check(request: dict, handle: dict):
        return Done(handle["result"]) if thing.up else None

    register_operation("camera/startup", Operation(start, check, lambda request, handle: thing.stopped.append(handle)))
    yield thing
    OPERATIONS.clear()
    OPERATIONS.update(before)


def new_job(request: dict, timeout: float = 60, method: str = "camera/startup") -> Job:
    return Job.new(method, request, timeout)


def test_it_runs_an_operation_to_done(camera):
    job = new_job({"instant": "hi"})
    services.run_job(str(job.pk))
    job.refresh_from_db()
    assert (job.state, job.result) == (JobState.DONE, {"echo": "hi"})
    assert job.started_at <= job.finished_at


def test_a_failing_operation_ends_failed_with_its_status(camera):
    job = new_job({"fail": True})
    services.run_job(str(job.pk))
    job.refresh_from_db()
    assert (job.state, job.error_status, job.error) == (JobState.FAILED, 404, "Stream not found")


def test_an_unknown_method_fails_with_a_readable_error(camera):
    job = new_job({}, method="nothing/here")
    services.run_job(str(job.pk))
    job.refresh_from_db()
    assert (job.state, job.error_status) == (JobState.FAILED, 500)
    assert job.error == "Internal error: no operation nothing/here on this worker"


def test_a_waiting_job_is_done_by_its_event(camera):
    job = new_job({"name": "cam1"})
    services.run_job(str(job.pk))
    job.refresh_from_db()
    assert (job.state, job.watch) == (JobState.RUNNING, "camera:cam1")
    services.recheck_watching("camera:cam1")  # an event, but the camera is not up yet
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING
    camera.up = True
    services.recheck_watching("camera:other")
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING
    services.recheck_watching("camera:cam1")
    job.refresh_from_db()
    assert (job.state, job.result) == (JobState.DONE, {"name": "cam1"})


def test_cancelling_stops_what_the_job_started(camera):
    job = new_job({"name": "cam2"})
    services.run_job(str(job.pk))
    assert services.cancel_job(Job.objects.get(pk=job.pk), "Not done within its timeout of 1 s")
    job.refresh_from_db()
    assert (job.state, job.error) == (JobState.CANCELLED, "Not done within its timeout of 1 s")
    assert camera.stopped == [{"camera": "cam2", "result": {"name": "cam2"}}]
    camera.up = True
    services.recheck_watching("camera:cam2")  # too late: it stays cancelled
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELLED
    assert not services.cancel_job(job, "again")


def test_a_cancel_during_the_start_undoes_the_start(camera):
    # The deadline fires while the operation is starting: nothing to stop yet when it is cancelled,
    # so the start undoes its own work when it finds the job cancelled.
    job = new_job({"name": "cam3"})
    original = OPERATIONS["camera/startup"]

    def start_then_deadline(request: dict) -> Started:
        started = original.start(request)
        services.cancel_job(Job.objects.get(pk=job.pk), "Not done within its timeout of 1 s")
        return started

    register_operation("camera/startup", Operation(start_then_deadline, original.check, original.stop))
    services.run_job(str(job.pk))
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELLED
    assert camera.stopped == [{"camera": "cam3", "result": {"name": "cam3"}}]


def test_a_job_not_started_before_its_deadline_is_cancelled_not_run(camera):
    job = new_job({"instant": "late"}, timeout=0.01)
    time.sleep(0.05)
    services.run_job(str(job.pk))
    job.refresh_from_db()
    assert (job.state, job.error) == (JobState.CANCELLED, "Not started within its timeout of 0.01 s")
    assert job.result is None


def test_the_sweep_cancels_overdue_jobs_only(camera):
    overdue = new_job({"name": "cam4"}, timeout=0.01)
    services.run_job(str(new_job({"name": "cam5"}).pk))
    Job.objects.filter(pk=overdue.pk).update(deadline=timezone.now() - timedelta(seconds=30))
    assert services.cancel_overdue_jobs() == 1
    assert Job.objects.get(pk=overdue.pk).state == JobState.CANCELLED
    assert Job.objects.filter(state=JobState.RUNNING).count() == 1


def test_pruning_deletes_old_finished_jobs_only(camera):
    old_done, recent_done, old_running = new_job({"instant": 1}), new_job({"instant": 2}), new_job({"name": "c6"})
    for job in (old_done, recent_done, old_running):
        services.run_job(str(job.pk))
    Job.objects.filter(pk__in=[old_done.pk, old_running.pk]).update(finished_at=timezone.now() - timedelta(days=2))
    assert services.prune_finished_jobs(86400) == 1
    assert set(Job.objects.values_list("pk", flat=True)) == {recent_done.pk, old_running.pk}


def test_wait_for_job_wakes_on_the_announcement(camera):
    job = new_job({"name": "cam7"})
    services.run_job(str(job.pk))

    async def scenario():
        waiter = asyncio.create_task(services.wait_for_job(job.pk, 30))
        await asyncio.sleep(0.5)
        assert not waiter.done()
        camera.up = True
        started = time.monotonic()
        await sync_to_async(services.recheck_watching)("camera:cam7")
        finished = await waiter
        return finished, time.monotonic() - started

    finished, seconds = asyncio.run(scenario())
    assert finished.state == JobState.DONE
    assert seconds < 10  # woken by the event, not by the end of its 30 s wait


def test_wait_for_job_answers_the_running_job_after_its_wait(camera):
    job = new_job({"name": "cam8"})
    services.run_job(str(job.pk))
    assert asyncio.run(services.wait_for_job(job.pk, 0.2)).state == JobState.RUNNING


def test_requests_and_errors_are_shown_without_credentials():
    job = Job(
        method="rtsp/startup",
        request={"uri": "rtsp://admin:s3cret@10.0.0.5/main", "sipPassword": "x", "nested": [{"token": "t"}]},
        error="Failed to pull provided URL: rtsp://admin:s3cret@10.0.0.5/main refused",
    )
    assert job.public_request == {
        "uri": "rtsp://admin:***@10.0.0.5/main",
        "sipPassword": "***",
        "nested": [{"token": "***"}],
    }
    assert job.public_error == "Failed to pull provided URL: rtsp://admin:***@10.0.0.5/main refused"
