"""HLS dumps: create (the stream must be live), stop, and hand to Celery."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.hls_dump.models import HlsDump
from apps.hosting.models import Application
from apps.jobs import services as jobs
from apps.jobs.choices import ACTIVE_STATES


class DumpConflict(Exception):
    """An active dump with this id already exists in the application."""


def dump_task():
    from apps.hls_dump.tasks import dump_stream

    return dump_stream


def create_dump(application: Application, spec: dict) -> HlsDump:
    with transaction.atomic():
        if HlsDump.objects.filter(application=application, dump_id=spec["id"], state__in=ACTIVE_STATES).exists():
            raise DumpConflict(spec["id"])
        try:
            dump = HlsDump.objects.create(
                application=application,
                dump_id=spec["id"],
                stream_name=spec["outputStreamName"],
                output_path=spec["outputPath"],
                playlists=spec.get("playlist", []),
                info_file=spec.get("infoFile", ""),
                user_data=spec.get("userData", ""),
            )
        except IntegrityError as error:
            raise DumpConflict(spec["id"]) from error
        jobs.dispatch_if_live(dump, dump_task())
    return dump


def active_dumps(application: Application, stream_name: str, dump_id: str | None = None):
    dumps = HlsDump.objects.filter(application=application, stream_name=stream_name, state__in=ACTIVE_STATES)
    return dumps.filter(dump_id=dump_id) if dump_id else dumps


def stop_dump(dump: HlsDump) -> HlsDump:
    with transaction.atomic():
        # Locked: the worker may be changing the state at the same moment (stream ended).
        dump = HlsDump.objects.select_for_update().get(pk=dump.pk)
        dump.request_stop()
    return dump
