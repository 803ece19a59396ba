"""Job history in check: finished job rows older than the retention period are pruned (files stay),
and the admin's delete actions remove a finished job (and on request its files, inside the media
root only) while refusing one that may still run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.hosting.models import Application
from apps.jobs.services import JobStillActive, delete_job
from apps.jobs.tasks import prune_finished_jobs
from apps.push.models import Push
from apps.recording.models import Record, RecordFile

pytestmark = pytest.mark.django_db


@pytest.fixture
def app() -> Application:
    return Application.objects.get(name="app")


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


def finished_record(app, record_id: str, days_ago: float, state: str = "stopped") -> Record:
    return Record.objects.create(
        application=app, record_id=record_id, stream_name="cam", state=state,
        finished_at=timezone.now() - timedelta(days=days_ago),
    )  # fmt: skip


def with_file(record: Record, path, sequence: int = 0) -> RecordFile:
    path.write_bytes(b"\0" * 100)
    return RecordFile.objects.create(record=record, sequence=sequence, path=str(path), started_at=timezone.now())


def test_prune_removes_finished_rows_older_than_the_retention_and_keeps_their_files(settings, app, media):
    settings.JOB_HISTORY_DAYS = 7
    old = finished_record(app, "old", days_ago=8)
    old_file = media / "old.mp4"
    with_file(old, old_file)
    failed = finished_record(app, "failed", days_ago=30, state="error")
    recent = finished_record(app, "recent", days_ago=6)
    running = Record.objects.create(application=app, record_id="live", stream_name="cam", state="started",
                                    created_at=timezone.now() - timedelta(days=30))  # fmt: skip
    old_push = Push.objects.create(application=app, push_id="p", stream_name="cam", protocol="rtmp", url="rtmp://h/a",
                                   state="stopped", finished_at=timezone.now() - timedelta(days=9))  # fmt: skip

    assert prune_finished_jobs() >= 3

    remaining = set(Record.objects.values_list("pk", flat=True))
    assert remaining == {recent.pk, running.pk}
    assert not Push.objects.filter(pk=old_push.pk).exists()
    assert not Record.objects.filter(pk__in=[old.pk, failed.pk]).exists()
    assert not RecordFile.objects.exists()
    assert old_file.exists()  # the row goes, the recording stays


def test_the_retention_is_a_setting(settings, app, media):
    settings.JOB_HISTORY_DAYS = 1
    finished_record(app, "two-days", days_ago=2)
    prune_finished_jobs()
    assert not Record.objects.exists()


@pytest.mark.parametrize("state", ["ready", "started", "retrying", "stopping"])
def test_deleting_a_job_that_may_still_run_is_refused(app, media, state):
    record = Record.objects.create(application=app, record_id="r", stream_name="cam", state=state)
    file = with_file(record, media / "r.mp4")
    with pytest.raises(JobStillActive, match="stop it first"):
        delete_job(record, with_files=True)
    assert Record.objects.filter(pk=record.pk, state=state).exists()
    assert (media / "r.mp4").exists() and RecordFile.objects.filter(pk=file.pk).exists()


def test_deleting_with_files_removes_only_files_inside_the_media_root(app, media, tmp_path):
    record = finished_record(app, "r", days_ago=0)
    inside = media / "rec" / "r_0.mp4"
    inside.parent.mkdir()
    with_file(record, inside, 0)
    outside = tmp_path / "elsewhere.mp4"
    with_file(record, outside, 1)

    removed = delete_job(record, with_files=True)

    assert removed == [str(inside.resolve())]
    assert not inside.exists() and outside.exists()
    assert not Record.objects.filter(pk=record.pk).exists()


def test_the_admin_deletes_finished_jobs_and_refuses_running_ones(admin_client, app, media):
    done = finished_record(app, "done", days_ago=0)
    kept = media / "done.mp4"
    with_file(done, kept)
    running = Record.objects.create(application=app, record_id="running", stream_name="cam", state="started")

    response = admin_client.post(
        "/admin/recording/record/", {"action": "delete_jobs", "_selected_action": [done.pk, running.pk]}, follow=True
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert "Not deleted: running (default/app/cam) is started: stop it first." in text
    assert "Deleted 1 job(s) (files kept)." in text
    assert list(Record.objects.values_list("record_id", flat=True)) == ["running"]
    assert kept.exists()
    # Django's own bulk delete (which would skip the refusal) is not offered; nor is the change page's delete.
    assert 'value="delete_selected"' not in admin_client.get("/admin/recording/record/").content.decode()
    assert admin_client.get(f"/admin/recording/record/{running.pk}/delete/").status_code == 403


def test_the_admin_deletes_a_job_with_its_files_on_request(admin_client, app, media):
    done = finished_record(app, "done", days_ago=0)
    file = media / "done.mp4"
    with_file(done, file)
    response = admin_client.post(
        "/admin/recording/record/", {"action": "delete_jobs_and_files", "_selected_action": [done.pk]}, follow=True
    )
    assert "Deleted 1 job(s) and 1 file(s)." in response.content.decode()
    assert not Record.objects.exists() and not file.exists()
