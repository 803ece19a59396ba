"""The push media job: plays the stream from its engine node over RTMP and re-publishes it
(RTMP, MPEG-TS over UDP/TCP, SRT) without re-encoding (but the audio of a push with audio control),
reconnecting with backoff."""

from __future__ import annotations

from celery import shared_task

from apps.jobs.runner import StopCheck, run_stream_job
from apps.push.models import Push
from media_engine.jobs.audio_control import AudioControl
from media_engine.jobs.events import MediaEvent
from media_engine.jobs.push import Pusher, PushProgress


class PushJob:
    """Glue between a Push row (held by this worker's lease) and the media Pusher: states,
    counters, stop requests. A stop is never overwritten: the transitions leave only running states."""

    def __init__(self, push: Push) -> None:
        self.push = push

    def on_state(self, event: MediaEvent, error: str | None) -> None:
        if event == MediaEvent.STARTED:
            self.push.mark_connected(sent_bytes=0, sent_time_ms=0)
        elif event == MediaEvent.RETRYING:
            self.push.mark_retrying(error or "the target is unreachable")

    def audio_state(self) -> AudioControl:
        return Push.objects.get(pk=self.push.pk).audio_state()

    def on_progress(self, progress: PushProgress) -> None:
        self.push.held().update(
            sent_bytes=progress.sent_bytes,
            sent_time_ms=progress.sent_time_ms,
            total_sent_bytes=progress.total_sent_bytes,
            total_sent_time_ms=progress.total_sent_time_ms,
        )


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def push_stream(self, push_pk: int) -> str:
    def media(push: Push, stream, should_stop: StopCheck) -> None:
        job = PushJob(push)
        Pusher(
            lambda: stream.node.rtmp_url(push.application.name, push.stream_name),  # a fresh token per connection
            push.protocol,
            push.url,
            stream_key=push.stream_key or None,
            track_filter=push.track_kinds(stream),
            should_stop=should_stop,
            on_state=job.on_state,
            on_progress=job.on_progress,
            audio_control=job.audio_state if push.audio_control else None,
        ).run()

    return run_stream_job(Push, push_pk, media, self.request.id or "")
