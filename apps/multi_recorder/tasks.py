"""The multiple streams recorder media job: plays every member stream from its engine node over
RTMP and remuxes them together into MP4 files (`media_engine.jobs.multi_record.MultiRecorder`).

Runs on the `media` queue with acks_late until the recorder is terminated; if the worker dies, the
job is delivered again (or resumed by the beat) and goes on with the next file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from celery import shared_task

from apps.jobs.models import LeaseLost
from apps.jobs.runner import StopCheck, run_stream_job
from apps.multi_recorder.models import MultiRecorder, MultiRecorderFile
from apps.multi_recorder.services import file_path, live_members, member_source_url, next_sequence
from media_engine.jobs.multi_record import MultiRecordedFile
from media_engine.jobs.multi_record import MultiRecorder as MediaMultiRecorder

logger = logging.getLogger(__name__)


class MultiRecordJob:
    """Glue between a MultiRecorder row and the media MultiRecorder: members, files, stop requests."""

    def __init__(self, recorder: MultiRecorder) -> None:
        self.recorder = recorder
        self._next_number = 0

    def members(self) -> list[str]:
        return live_members(self.recorder.pk)

    def source_url(self, media_session_id: str) -> str:
        return member_source_url(self.recorder.application, media_session_id)

    def path_for(self, sequence: int) -> Path:
        """Part ``sequence``'s name, or the next free one: "room" part 1 and "room-1" part 0 share
        a name, and neither may overwrite the other."""
        number = max(sequence, self._next_number)
        while (path := file_path(self.recorder.uri, number)).exists():
            number += 1
        self._next_number = number + 1
        return path

    def on_file_started(self, recorded: MultiRecordedFile) -> None:
        if not self.recorder.held().exists():
            raise LeaseLost(str(self.recorder))  # another worker records now: it names the files
        MultiRecorderFile.objects.update_or_create(
            recorder=self.recorder,
            sequence=recorded.sequence,
            defaults={"path": str(recorded.path), "members": recorded.members, "started_at": recorded.started_at},
        )
        self.recorder.held().update(current_file=str(recorded.path), sequence=recorded.sequence)

    def on_file_finished(self, recorded: MultiRecordedFile) -> None:
        MultiRecorderFile.objects.filter(recorder=self.recorder, sequence=recorded.sequence).update(
            finished_at=recorded.finished_at, bytes=recorded.bytes, duration_ms=recorded.duration_ms
        )
        self.recorder.held().update(current_file="")

    def run(self, should_stop) -> None:
        MediaMultiRecorder(
            self.members,
            self.source_url,
            self.path_for,
            should_stop=should_stop,
            on_file_started=self.on_file_started,
            on_file_finished=self.on_file_finished,
            first_sequence=next_sequence(self.recorder.uri),
        ).run()


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def record_multiple_streams(self, recorder_pk: int) -> str:
    def media(recorder: MultiRecorder, _where, should_stop: StopCheck) -> None:
        recorder.mark_started()  # a WCS v3 call waiting for the recorder to run hears of it
        MultiRecordJob(recorder).run(should_stop)

    return run_stream_job(MultiRecorder, recorder_pk, media, self.request.id or "")
