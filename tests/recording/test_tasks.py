"""The record job's glue (no media): file rows name their writer, and a worker whose lease was
taken over neither starts files nor deletes or renames rows it did not write (issue #22 item 5:
the loser of a double delivery deleted the winner's index rows)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.engine.models import EngineNode
from apps.hosting.models import Application
from apps.jobs.models import LeaseLost
from apps.recording.models import Record, RecordFile
from apps.recording.tasks import RecordJob
from apps.streams.models import Stream
from media_engine.jobs.record import RecordedFile

pytestmark = pytest.mark.django_db


@pytest.fixture
def stream(settings, tmp_path) -> Stream:
    settings.MEDIA_ROOT = tmp_path
    node = EngineNode.objects.create(node_id="n", hostname="n", rtmp_port=1935, media_http_port=3333)
    return Stream.objects.create(application=Application.objects.get(name="app"), name="cam", node=node)


@pytest.fixture
def record(stream) -> Record:
    return Record.objects.create(
        application=stream.application, record_id="r", stream_name="cam", file_path="rec/${Sequence}.mp4"
    )


def take_over(record: Record) -> Record:
    """The lease ran out (the first worker stalled) and a second worker claims the record."""
    Record.objects.filter(pk=record.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    second = Record.objects.get(pk=record.pk)
    assert second.claim("second")
    return second


def test_a_worker_that_lost_its_lease_touches_no_row_it_did_not_write(record, stream):
    assert record.claim("first")
    first = RecordJob(record, stream, "first", lambda: False)
    started = timezone.now()
    file0 = RecordedFile(0, first.path_for(0, started), started)
    first.on_file_started(file0)
    assert RecordFile.objects.get(record=record, sequence=0).writer == first.writer != ""

    second = RecordJob(take_over(record), stream, "second", lambda: False)
    with pytest.raises(LeaseLost):
        first.on_file_started(RecordedFile(1, first.path_for(1, started), started))
    file1 = RecordedFile(1, second.path_for(1, started), started)
    second.on_file_started(file1)

    # The first worker closes its own file 0, and is told of a file 1 it never wrote (the second's).
    file0.path.write_bytes(b"media")
    file0.finished_at, file0.bytes = timezone.now(), 5
    first.on_file_finished(file0)
    first.on_file_finished(RecordedFile(1, file1.path, started, timezone.now()))  # never written by it
    rows = {row.sequence: row for row in RecordFile.objects.filter(record=record)}
    assert set(rows) == {0, 1}
    assert (rows[0].path, rows[0].bytes, rows[0].writer) == (str(file0.path.with_name("0.mp4")), 5, first.writer)
    assert rows[1].writer == second.writer and rows[1].finished_at is None
    record.refresh_from_db()
    assert (record.sequence, record.total_record_bytes) == (1, 0)  # counters belong to the lease holder
