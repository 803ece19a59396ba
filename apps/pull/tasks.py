"""The pull media job: reads the pull's URLs and publishes them into a live engine node over RTMP,
failing over between URLs, until stopped, unused for too long, or out of sources."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.db.models import F

from apps.engine.models import EngineNode
from apps.jobs.runner import JobFailed, StopCheck, run_stream_job
from apps.pull.models import Pull
from apps.streams.models import Stream
from media_engine.jobs.events import MediaEvent
from media_engine.jobs.pull import Puller, PullFailed, PullProgress

logger = logging.getLogger(__name__)


class PullJob:
    """Glue between a Pull row and the media Puller: states, counters, stop and unused checks."""

    def __init__(self, pull: Pull, stop_check: StopCheck, clock=time.monotonic) -> None:
        self.pull = pull
        self.clock = clock
        self.stop_check = stop_check
        self.unused_since: float | None = None
        self.unused_reason = ""

    def should_stop(self) -> bool:
        return self.stop_check() or self._unused_too_long()

    def _unused_too_long(self) -> bool:
        pull = self.pull
        if pull.persistent or not pull.unused_stream_deletion_timeout_ms or pull.started_at is None:
            return False
        viewers = (
            Stream.objects.live()
            .filter(application_id=pull.application_id, name=pull.stream_name)
            .values_list("total_connections", flat=True)
            .first()
        )
        now = self.clock()
        if viewers:
            self.unused_since = None
            return False
        self.unused_since = self.unused_since if self.unused_since is not None else now
        if (now - self.unused_since) * 1000 >= pull.unused_stream_deletion_timeout_ms:
            self.unused_reason = f"deleted: no viewer for {pull.unused_stream_deletion_timeout_ms} ms"
            return True
        return False

    def on_state(self, event: MediaEvent, error: str | None) -> None:
        # The transitions leave only running states: a stop is never overwritten.
        if event == MediaEvent.STARTED:
            self.pull.mark_connected()
        elif event == MediaEvent.RETRYING:
            self.pull.mark_retrying(error or "no source answers")
        elif event == MediaEvent.FAILOVER:
            self.pull.held().update(error=(error or "")[:2000], failovers=F("failovers") + 1)

    def on_progress(self, progress: PullProgress) -> None:
        self.pull.held().update(current_url=progress.url, received_bytes=progress.received_bytes)


def make_puller(pull: Pull, node: EngineNode, job: PullJob) -> Puller:
    target = node.rtmp_url(pull.application.name, pull.stream_name, publish=True)
    options = {
        "persistent": pull.persistent,
        "no_input_timeout": pull.no_input_failover_timeout_ms / 1000,
        "should_stop": job.should_stop,
        "on_state": job.on_state,
        "on_progress": job.on_progress,
    }
    if pull.is_vod:
        return Puller.local(str(pull.vod_path()), target, loop=pull.loop, **options)
    if pull.is_listener:
        # A listener waits for its publisher for as long as the no-input timeout allows.
        return Puller.local(pull.urls[0], target, open_timeout=options["no_input_timeout"], **options)
    return Puller(pull.urls, target, **options)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def pull_stream(self, pull_pk: int) -> str:
    def media(pull: Pull, node: EngineNode, should_stop: StopCheck) -> str:
        job = PullJob(pull, should_stop)
        try:
            make_puller(pull, node, job).run()
        except PullFailed as error:
            raise JobFailed(f"Failed to pull provided URL: {error}") from error
        pull.refresh_from_db(fields=["state"])
        return job.unused_reason or ("" if pull.stop_requested else "no source is left")

    return run_stream_job(Pull, pull_pk, media, self.request.id or "")
