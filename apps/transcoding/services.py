"""Transcodes: started for every profile that needs one when a stream goes live (never for the
renditions themselves), stopped, and what they publish and cost, for the APIs and the admin."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q, Sum

from apps.hosting.models import Application, OutputProfile
from apps.jobs import services as jobs
from apps.jobs.choices import ACTIVE_STATES, LEASED_STATES, JobState
from apps.streams.models import Stream
from apps.transcoding.models import Transcode
from apps.transcoding.plans import ProfilePlan, origin_of, plan_profile

logger = logging.getLogger(__name__)


def transcode_task():
    from apps.transcoding.tasks import transcode_stream

    return transcode_stream


def rendition_stream_names(application: Application) -> set[str]:
    """The streams of ``application`` that transcodes publish (not inputs of their own)."""
    names: set[str] = set()
    for streams in Transcode.objects.filter(application=application, state__in=ACTIVE_STATES).values_list(
        "rendition_streams", flat=True
    ):
        names.update(streams or [])
    return names


def is_rendition(stream: Stream) -> bool:
    return stream.name in rendition_stream_names(stream.application)


def plans_needing_jobs(application: Application, origin: str) -> list[tuple[OutputProfile, ProfilePlan]]:
    plans = [(profile, plan_profile(profile, origin)) for profile in application.output_profiles.all()]
    return [(profile, plan) for profile, plan in plans if plan.needs_job]


def start_transcodes(stream: Stream) -> list[Transcode]:
    """Every output profile of the stream's application that encodes something gets its job."""
    if is_rendition(stream):
        return []  # a rendition is an output: transcoding it again would never end
    return [
        start_transcode(stream.application, stream.name, profile)
        for profile, _ in plans_needing_jobs(stream.application, stream.name)
    ]


def start_transcode(application: Application, stream_name: str, profile: OutputProfile) -> Transcode:
    with transaction.atomic():
        # Locked: the stream going live and the previous run winding down may both get here.
        job, _ = Transcode.objects.select_for_update().get_or_create(
            application=application, stream_name=stream_name, profile=profile
        )
        if job.state in (JobState.STOPPED, JobState.ERROR):
            job.reserve()
        if job.state == JobState.READY:
            logger.info("stream %s/%s is live: transcoding with %s", application.path, stream_name, profile.name)
            jobs.dispatch(job, transcode_task())
        # Otherwise a worker still runs the last run; its end queues the job again if the stream is live.
    return job


def end_run(job: Transcode) -> str:
    """The stream ended (the run returned, the job waits): it is stopped, unless the stream is
    already back, when it runs again."""
    job.end_run()
    if jobs.live_stream_of(job) is not None:
        start_transcode(job.application, job.stream_name, job.profile)
        return "restarted"
    return "stopped"


def stop_transcode(job: Transcode) -> Transcode:
    with transaction.atomic():
        job = Transcode.objects.select_for_update().get(pk=job.pk)
        job.request_stop()
    return job


def transcodes_of(stream: Stream) -> list[Transcode]:
    """The running transcodes of a live input stream."""
    return list(
        Transcode.objects.filter(application_id=stream.application_id, stream_name=stream.name, state__in=LEASED_STATES)
        .select_related("profile")
        .order_by("profile__position", "id")
    )


def rendition_outputs(stream: Stream) -> list[tuple[dict, Stream | None]]:
    """The renditions the transcodes of ``stream`` publish, each with its live stream row (None
    while it is not live yet)."""
    planned = [
        rendition
        for job in transcodes_of(stream)
        for rendition in job.renditions
        if rendition.get("video") or rendition.get("audio")
    ]
    names = [rendition["stream"] for rendition in planned if rendition["stream"] != stream.name]
    live = {row.name: row for row in Stream.objects.live().filter(application_id=stream.application_id, name__in=names)}
    return [(rendition, live.get(rendition["stream"])) for rendition in planned if rendition["stream"] != stream.name]


def transcoding_cost(streams: Q) -> dict:
    """CPU of the running transcodes of the input streams matching ``streams`` (a Q on Transcode)."""
    running = Transcode.objects.filter(streams, state__in=LEASED_STATES)
    totals = running.aggregate(cpu_percent=Sum("cpu_percent"), cpu_seconds=Sum("cpu_seconds"))
    return {
        "jobs": running.count(),
        "cpuUsage": round(totals["cpu_percent"] or 0.0, 1),
        "cpuTime": round(totals["cpu_seconds"] or 0.0, 3),
    }


def playlist_variants(
    application: Application, output_stream: str, file_name: str
) -> list[tuple[str, int | None]] | None:
    """The variants (stream, configured bandwidth) of the master playlist ``file_name`` of the output
    stream ``output_stream`` of ``application``, or None if no output profile has it."""
    for profile in application.output_profiles.all():
        origin = origin_of(profile.output_stream_name, output_stream)
        if origin is None:
            continue
        variants = plan_profile(profile, origin).playlists.get(file_name)
        if variants is not None:
            return [(rendition.stream_name, rendition.bandwidth) for rendition in variants]
    return None
