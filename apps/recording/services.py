"""Record tasks: create (validated, reserved until the stream is live), stop, and hand to Celery."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.hosting.models import Application
from apps.jobs import services as jobs
from apps.jobs.choices import ACTIVE_STATES
from apps.recording.choices import DEFAULT_FILE_PATH, DEFAULT_INFO_PATH
from apps.recording.models import Record
from apps.streams.models import Stream


class RecordConflict(Exception):
    """An active record with this id already exists in the application."""


def record_task():
    from apps.recording.tasks import record_stream

    return record_stream


def create_record(application: Application, spec: dict) -> Record:
    """Store a validated :startRecord request and start it at once if the stream is live."""
    with transaction.atomic():
        if Record.objects.filter(application=application, record_id=spec["id"], state__in=ACTIVE_STATES).exists():
            raise RecordConflict(spec["id"])
        try:
            record = Record.objects.create(
                application=application,
                record_id=spec["id"],
                stream_name=spec["stream"]["name"],
                variant_names=spec["stream"].get("variantNames", []),
                track_ids=spec["stream"].get("trackIds", []),
                file_path=spec.get("filePath") or DEFAULT_FILE_PATH,
                info_path=spec.get("infoPath") or DEFAULT_INFO_PATH,
                interval_ms=spec.get("interval"),
                schedule=spec.get("schedule", ""),
                segmentation_rule=spec.get("segmentationRule", "discontinuity"),
                metadata=spec.get("metadata", ""),
            )
        except IntegrityError as error:
            raise RecordConflict(spec["id"]) from error
        jobs.dispatch_if_live(record, record_task())
    return record


def start_reserved_records(stream: Stream) -> None:
    jobs.start_reserved(Record, record_task(), stream)


def stop_record(record: Record) -> Record:
    with transaction.atomic():
        # Lock the row: the worker writes progress to it concurrently.
        record = Record.objects.select_for_update().get(pk=record.pk)
        record.request_stop()
    return record
