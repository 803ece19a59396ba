"""The transcode media job (queue `transcode`): plays the stream from its engine node, publishes the
profile's renditions back into it over RTMP and writes its thumbnails under the media root."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings

from apps.jobs.choices import RunOutcome
from apps.jobs.paths import UnsafePath
from apps.jobs.runner import StopCheck, run_stream_job
from apps.streams.models import Stream
from apps.transcoding.models import Transcode, WcsTranscoder
from apps.transcoding.plans import BYPASS, ProfilePlan, bypass_matches, plan_profile
from apps.transcoding.services import end_run
from apps.transcoding.transcoders import overlay_of
from apps.transcoding.transcoders import video_encoding as video_encoding_of_wcs
from media_engine.jobs.events import MediaEvent
from media_engine.jobs.thumbnail import ThumbnailStore
from media_engine.jobs.transcode import (
    AudioEncoding,
    ImageOutput,
    Rendition,
    TranscodeProgress,
    Transcoder,
    VideoEncoding,
)
from media_engine.jobs.watermark import WatermarkSlot

logger = logging.getLogger(__name__)

X264_PRESETS = {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"}
DEFAULT_PRESET = "veryfast"
TRACKS_WAIT = 3.0  # seconds to wait for the input's tracks when a bypassIfMatch needs them


def thumbnail_store() -> ThumbnailStore:
    return ThumbnailStore(settings.MEDIA_ROOT / "thumbnails")


def video_encoding(encode: dict) -> VideoEncoding:
    preset = str(encode.get("preset") or DEFAULT_PRESET).lower()
    threads = encode.get("threadCount")
    return VideoEncoding(
        codec=str(encode.get("codec", "h264")).lower(),
        bitrate=int(encode.get("bitrate") or 1_000_000),
        width=encode.get("width"),
        height=encode.get("height"),
        framerate=float(encode["framerate"]) if encode.get("framerate") else None,
        preset=preset if preset in X264_PRESETS else DEFAULT_PRESET,
        keyframe_interval=int(encode["keyFrameInterval"]) if encode.get("keyFrameInterval") else None,
        bframes=int(encode.get("bFrames") or 0),
        profile=str(encode["profile"]).lower() if encode.get("profile") else None,
        threads=1 if threads is None else int(threads),
    )


def audio_encoding(encode: dict) -> AudioEncoding:
    return AudioEncoding(
        codec=str(encode.get("codec", "aac")).lower(),
        bitrate=int(encode.get("bitrate") or 128_000),
        samplerate=int(encode["samplerate"]) if encode.get("samplerate") else None,
        channels=int(encode["channel"]) if encode.get("channel") else None,
    )


def input_tracks(stream: Stream, plan: ProfilePlan) -> dict[str, dict]:
    """The input's first video and audio track; waits a little for them if a bypassIfMatch asks."""
    asks = any(
        isinstance(encode, dict) and encode.get("bypassIfMatch")
        for rendition in plan.renditions
        for encode in (rendition.video, rendition.audio)
    )
    deadline = time.monotonic() + (TRACKS_WAIT if asks else 0)
    while True:
        tracks = {}
        for track in stream.input_tracks or []:
            tracks.setdefault(track.get("kind"), track)
        if tracks or time.monotonic() >= deadline:
            return tracks
        time.sleep(0.25)
        stream.refresh_from_db(fields=["input_tracks"])


def build_renditions(plan: ProfilePlan, tracks: dict[str, dict], rtmp_url) -> list[Rendition]:
    renditions = []
    for planned in plan.renditions:
        if not planned.needs_stream:
            continue
        video, audio = planned.video, planned.audio
        if isinstance(video, dict):
            video = BYPASS if bypass_matches(video, tracks.get("video")) else video_encoding(video)
        if isinstance(audio, dict):
            audio = BYPASS if bypass_matches(audio, tracks.get("audio")) else audio_encoding(audio)
        renditions.append(Rendition(planned.name, rtmp_url(planned.stream_name), video, audio))
    return renditions


class TranscodeJob:
    """Glue between a Transcode row and the media Transcoder: states, counters, stop requests."""

    def __init__(self, job: Transcode, should_stop: StopCheck) -> None:
        self.job = job
        self.stop_check = should_stop

    def should_stop(self) -> bool:
        try:
            return self.stop_check()
        except Transcode.DoesNotExist:
            return True  # its profile (and so the job) was deleted

    def on_state(self, event: MediaEvent, error: str | None) -> None:
        if event == MediaEvent.STARTED:
            self.job.mark_started()  # not over a stop: only from the running states

    def on_progress(self, progress: TranscodeProgress) -> None:
        self.job.record_progress(
            progress.cpu_seconds,
            progress.cpu_percent,
            progress.frames_decoded,
            progress.frames_encoded,
            progress.images_written,
        )


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def transcode_stream(self, transcode_pk: int) -> str:
    def media(job: Transcode, stream: Stream, should_stop: StopCheck) -> None:
        plan = plan_profile(job.profile, stream.name)
        job.start_run([r.as_dict() for r in plan.renditions], plan.rendition_streams, plan.output_stream, plan.skipped)
        app = job.application
        store = thumbnail_store()
        images = [
            ImageOutput(
                image.codec,
                store.path(app.virtual_host.name, app.name, plan.output_stream, image.extension),
                image.width,
                image.height,
                image.framerate,
            )
            for image in plan.images
        ]
        renditions = build_renditions(
            plan, input_tracks(stream, plan), lambda name: stream.node.rtmp_url(app.name, name, publish=True)
        )
        glue = TranscodeJob(job, should_stop)
        Transcoder(
            stream.node.rtmp_url(app.name, stream.name),
            renditions,
            images,
            should_stop=glue.should_stop,
            on_state=glue.on_state,
            on_progress=glue.on_progress,
            store=store,
        ).run()

    try:
        outcome = run_stream_job(Transcode, transcode_pk, media, self.request.id or "")
    except Transcode.DoesNotExist:
        return RunOutcome.GONE.value  # its output profile was deleted while it ran
    if outcome == RunOutcome.WAITING:
        job = Transcode.objects.select_related("application__virtual_host", "profile").filter(pk=transcode_pk).first()
        if job is not None:
            return end_run(job)
    return outcome


class WcsTranscoderJob:
    """Glue between a WcsTranscoder row and its Transcoder: states, frame counts, and the watermark
    (re-read with every stop check, so /transcoder/set_watermark shows within a second)."""

    def __init__(self, job: WcsTranscoder, should_stop: StopCheck) -> None:
        self.job = job
        self.stop_check = should_stop
        self.slot = WatermarkSlot()
        self._watermark: dict | None = None
        self.load_watermark(job.watermark)

    def load_watermark(self, spec: dict) -> None:
        if spec == self._watermark:
            return
        self._watermark = spec
        try:
            self.slot.set(overlay_of(spec))
        except (ValueError, OSError, UnsafePath) as error:
            logger.warning("%s: watermark not applied: %s", self.job, error)
            self.slot.set(None)

    def should_stop(self) -> bool:
        stopping = self.stop_check()
        self.job.refresh_from_db(fields=["watermark"])
        self.load_watermark(self.job.watermark)
        return stopping

    def on_state(self, event: MediaEvent, error: str | None) -> None:
        if event == MediaEvent.STARTED:
            self.job.mark_started()  # not over a stop: only from the running states

    def on_progress(self, progress: TranscodeProgress) -> None:
        self.job.held().update(frames_encoded=sum(progress.frames_encoded.values()))


def cdn_audio(audio: dict | None):
    """A CDN profile's audio part (AAC with its rate, bitrate in kbps, channels); None: passed through."""
    if not audio:
        return BYPASS
    return AudioEncoding(
        codec="aac",
        bitrate=int(audio.get("bitrate") or 128) * 1000,
        samplerate=audio.get("rate"),
        channels=audio.get("channels"),
    )


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def transcode_for_wcs(self, transcoder_pk: int) -> str:
    """A WCS transcoder: its input played from the engine, one rendition (the encoder's video, the
    input's audio passed through) published back as ``localStreamName``."""

    def media(job: WcsTranscoder, stream: Stream, should_stop: StopCheck) -> None:
        glue = WcsTranscoderJob(job, should_stop)
        app = job.application
        # A CDN profile's rendition goes to the transcoder node the edge chose (apps.cdn.services).
        output_node = job.output_node if job.output_node is not None and job.output_node.is_alive else stream.node
        rendition = Rendition(
            "wcs",
            output_node.rtmp_url(app.name, job.local_stream_name, publish=True),
            video_encoding_of_wcs(job.encoder),
            cdn_audio(job.encoder.get("cdnAudio")),
            overlay=glue.slot,
        )
        Transcoder(
            stream.node.rtmp_url(app.name, stream.name),
            [rendition],
            should_stop=glue.should_stop,
            on_state=glue.on_state,
            on_progress=glue.on_progress,
        ).run()

    return run_stream_job(WcsTranscoder, transcoder_pk, media, self.request.id or "")
