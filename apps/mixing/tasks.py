"""The mixer media job (queue `transcode`): reads the mixer's streams from the engine and publishes
the mix into a live engine node over RTMP as the mixer's output stream, until terminated."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.jobs.runner import StopCheck, load_and_claim, wait_for_engine_node
from apps.mixing.models import Mixer
from apps.mixing.services import PictureCache, mixer_settings
from media_engine.jobs.mixer import Mixer as MediaMixer
from media_engine.jobs.mixer import MixerProgress

logger = logging.getLogger(__name__)


class MixerJob:
    """Glue between a Mixer row and the media mixer: settings, states, counters, stop requests."""

    def __init__(self, mixer: Mixer, task_id: str) -> None:
        self.mixer = mixer
        self.task_id = task_id
        self.should_stop = StopCheck(mixer)
        self.cache = PictureCache()

    def settings(self):
        return mixer_settings(Mixer.objects.select_related("application").get(pk=self.mixer.pk), self.cache)

    def on_state(self, state: str, error: str | None) -> None:
        mixer = Mixer.objects.get(pk=self.mixer.pk)
        if state == "started" and not mixer.stop_requested:
            mixer.mark_live(self.task_id)

    def on_progress(self, progress: MixerProgress) -> None:
        self.mixer.record_progress(progress.video_frames, progress.audio_frames, progress.inputs_live)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def run_mixer(self, mixer_pk: int) -> str:
    task_id = self.request.id or ""
    mixer = load_and_claim(Mixer, mixer_pk, task_id)
    if isinstance(mixer, str):
        return mixer
    job = MixerJob(mixer, task_id)
    node = wait_for_engine_node(job.should_stop)
    if node is None:
        mixer.mark_stopped()
        return "stopped"
    try:
        MediaMixer(
            node.rtmp_url(mixer.application.name, mixer.stream_name, publish=True),
            job.settings,
            should_stop=job.should_stop,
            on_state=job.on_state,
            on_progress=job.on_progress,
        ).run()
    except Exception as error:  # noqa: BLE001 - the row must say what happened
        logger.exception("%s failed", mixer)
        mixer.refresh_from_db()
        mixer.mark_error(str(error))
        return "error"
    mixer.refresh_from_db()
    mixer.mark_stopped()
    return "stopped"
