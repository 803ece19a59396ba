"""The mixer media job (queue `transcode`): reads the mixer's streams from the engine and publishes
the mix into a live engine node over RTMP as the mixer's output stream, until terminated."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.engine.models import EngineNode
from apps.jobs.runner import StopCheck, run_stream_job
from apps.mixing.models import Mixer
from apps.mixing.services import PictureCache, mixer_settings
from media_engine.jobs.events import MediaEvent
from media_engine.jobs.mixer import Mixer as MediaMixer
from media_engine.jobs.mixer import MixerProgress

logger = logging.getLogger(__name__)


class MixerJob:
    """Glue between a Mixer row (held by this worker's lease) and the media mixer: settings,
    states, counters."""

    def __init__(self, mixer: Mixer) -> None:
        self.mixer = mixer
        self.cache = PictureCache()

    def settings(self):
        return mixer_settings(Mixer.objects.select_related("application").get(pk=self.mixer.pk), self.cache)

    def on_state(self, event: MediaEvent, error: str | None) -> None:
        if event == MediaEvent.STARTED:
            self.mixer.mark_started()  # not over a stop: only from the running states

    def on_progress(self, progress: MixerProgress) -> None:
        self.mixer.record_progress(progress.video_frames, progress.audio_frames, progress.inputs_live)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def run_mixer(self, mixer_pk: int) -> str:
    def media(mixer: Mixer, node: EngineNode, should_stop: StopCheck) -> None:
        job = MixerJob(mixer)
        MediaMixer(
            node.rtmp_url(mixer.application.name, mixer.stream_name, publish=True),
            job.settings,
            should_stop=should_stop,
            on_state=job.on_state,
            on_progress=job.on_progress,
        ).run()

    return run_stream_job(Mixer, mixer_pk, media, self.request.id or "")
