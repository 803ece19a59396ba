"""The record media job: plays the stream from its engine node over RTMP and remuxes it to files.

Runs on the `media` queue with acks_late: if the worker dies, the job is delivered again and the
record continues with the next file of its sequence. Every write is fenced by the worker's lease
(``Record.held()``), and each file row names its writer: a worker only ever finishes or deletes
rows it wrote itself.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path

from celery import shared_task
from django.db.models import F
from django.utils import timezone

from apps.jobs.choices import RunOutcome
from apps.jobs.models import LeaseLost
from apps.jobs.paths import MacroValues, UnsafePath, confine, expand
from apps.jobs.runner import run_stream_job
from apps.recording.info import write_info_file
from apps.recording.models import Record, RecordFile
from apps.streams.models import Stream
from media_engine.jobs.record import RecordedFile, Recorder

logger = logging.getLogger(__name__)


class RecordJob:
    """Glue between a Record row and the media Recorder: names files, stores progress, obeys stop."""

    def __init__(self, record: Record, stream: Stream, task_id: str, should_stop) -> None:
        self.record = record
        self.should_stop = should_stop
        self.stream = stream
        self.task_id = task_id
        self.values = MacroValues(
            record.application.virtual_host.name, record.application.name, record.stream_name, record.record_id
        )
        self.temporary: dict[int, Path] = {}
        self.writer = record.held_lease

    def path_for(self, sequence: int, started_at: datetime) -> Path:
        final = self._final_path(sequence, started_at, None)
        # EndTime is unknown until the file closes: write under a temporary name, rename at the end.
        temporary = final.with_name(f".{final.stem}.recording{final.suffix}")
        temporary.parent.mkdir(parents=True, exist_ok=True)
        self.temporary[sequence] = temporary
        return temporary

    def _final_path(self, sequence: int, start: datetime, end: datetime | None) -> Path:
        values = MacroValues(**{**self.values.__dict__, "sequence": sequence, "start": start, "end": end})
        return confine(expand(self.record.file_path, values))

    def on_file_started(self, recorded: RecordedFile) -> None:
        if not self.record.held().exists():
            raise LeaseLost(str(self.record))  # another worker records now: it numbers the files
        RecordFile.objects.update_or_create(
            record=self.record,
            sequence=recorded.sequence,
            defaults={"path": str(recorded.path), "started_at": recorded.started_at, "writer": self.writer},
        )
        self.record.held().update(sequence=recorded.sequence, record_bytes=0, record_time_ms=0)

    def on_progress(self, recorded: RecordedFile) -> None:
        self.record.held().update(record_bytes=recorded.bytes, record_time_ms=recorded.duration_ms)

    def on_file_finished(self, recorded: RecordedFile) -> None:
        mine = RecordFile.objects.filter(record=self.record, sequence=recorded.sequence, writer=self.writer)
        if not Path(recorded.path).exists():
            # Closed before any media reached it (the source went away at once): nothing to keep.
            logger.warning("record %s: file %s was never written", self.record, recorded.path)
            mine.delete()
            return
        final = self._final_path(recorded.sequence, recorded.started_at, recorded.finished_at)
        if final.exists():
            final = final.with_name(f"{final.stem}_{recorded.sequence}{final.suffix}")
        os.replace(recorded.path, final)
        # Its own row even when the lease is gone meanwhile: the file is on disk, the row says where.
        mine.update(
            path=str(final), finished_at=recorded.finished_at, bytes=recorded.bytes, duration_ms=recorded.duration_ms
        )
        self.record.held().update(
            record_bytes=recorded.bytes,
            record_time_ms=recorded.duration_ms,
            total_record_bytes=F("total_record_bytes") + recorded.bytes,
            total_record_time_ms=F("total_record_time_ms") + recorded.duration_ms,
        )
        self.write_info()

    def write_info(self) -> None:
        try:
            path = confine(expand(self.record.info_path, self.values))
        except UnsafePath:
            logger.error("record %s: info path %s is not allowed", self.record, self.record.info_path)
            return
        write_info_file(Record.objects.select_related("application__virtual_host").get(pk=self.record.pk), path)

    def run(self) -> None:
        last = self.record.files.order_by("-sequence").first()
        recorder = Recorder(
            source_url=self.stream.node.rtmp_url(self.record.application.name, self.record.stream_name),
            path_for=self.path_for,
            interval_ms=self.record.interval_ms,
            schedule=self.record.schedule or None,
            segmentation_rule=self.record.segmentation_rule,
            should_stop=self.should_stop,
            on_file_started=self.on_file_started,
            on_file_finished=self.on_file_finished,
            on_progress=self.on_progress,
            open_timeout=10,
            first_sequence=(last.sequence + 1) if last else 0,
            track_filter=self.record.track_kinds(self.stream),
        )
        if not self.record.mark_started():
            return  # stopped (or taken over) since the claim: a stop is never overwritten
        recorder.run()


def _finish_unfinished_files(record: Record) -> None:
    """A worker that died mid-file left a temporary file behind: keep what it holds."""
    for recorded in record.files.filter(finished_at__isnull=True):
        path = Path(recorded.path)
        if path.exists():
            RecordFile.objects.filter(pk=recorded.pk).update(bytes=path.stat().st_size, finished_at=timezone.now())


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def record_stream(self, record_pk: int) -> str:
    job: RecordJob | None = None

    def media(record: Record, stream, should_stop) -> None:
        nonlocal job
        _finish_unfinished_files(record)
        job = RecordJob(record, stream, self.request.id or "", should_stop)
        job.run()

    outcome = run_stream_job(Record, record_pk, media, self.request.id or "")
    if outcome == RunOutcome.STOPPED and job is not None:
        job.write_info()
    return outcome
