"""Pull tasks: create (validated; the name must be free), wait for the first outcome, stop, and hand to Celery."""

from __future__ import annotations

import time

from django.db import IntegrityError, transaction

from apps.hosting.models import Application
from apps.jobs import services as jobs
from apps.jobs.choices import ACTIVE_STATES, JobState
from apps.jobs.paths import confine
from apps.pull.models import DEFAULT_NO_INPUT_FAILOVER_MS, DEFAULT_UNUSED_DELETION_MS, VOD_SCHEMES, Pull
from apps.security.outbound import check_outbound_url
from apps.streams.models import Stream
from media_engine.jobs.pull import SOURCE_TYPES, validate_pull_urls
from media_engine.names import check_stream_name


class StreamExists(Exception):
    """A live stream or an active pull already has this name in the application."""


def pull_task():
    from apps.pull.tasks import pull_stream

    return pull_stream


def create_pull(application: Application, name: str, urls: list[str], properties: dict | None = None) -> Pull:
    """A new pull, queued for a media worker once the transaction commits. ``urls`` and ``name`` are
    checked (ValueError; OutboundRefused is one); a name in use raises StreamExists."""
    group, urls = validate_pull_urls(urls)
    for url in urls:
        check_outbound_url(url)
    return _create(application, name, urls, SOURCE_TYPES[group], properties or {})


def create_vod(application: Application, name: str, uri: str, loop: bool = False) -> Pull:
    """A file under the media root (``vod-live://file.mp4``) played as a live stream. A missing or
    unsafe file raises ValueError (UnsafePath is one)."""
    scheme, _, file_name = uri.partition("://")
    if scheme.lower() not in VOD_SCHEMES or not file_name:
        raise ValueError(f"{uri}: use vod-live://<file under the media root>")
    if not confine(file_name).is_file():
        raise ValueError(f"{uri}: no such file")
    return _create(application, name, [uri], "File", {"loop": loop, "unusedStreamDeletionTimeoutMs": 0})


def create_listener(application: Application, name: str, url: str, no_input_timeout_ms: int) -> Pull:
    """An MPEG-TS listener (``udp://host:port`` or ``tcp://host:port?listen=1``) that publishes what it receives."""
    return _create(
        application,
        name,
        [url],
        "Mpegts",
        {"noInputFailoverTimeoutMs": no_input_timeout_ms, "unusedStreamDeletionTimeoutMs": 0},
    )


def _create(application: Application, name: str, urls: list[str], source_type: str, properties: dict) -> Pull:
    check_stream_name(name)  # the engine's rule (InvalidStreamName is a ValueError): it would refuse the publish
    with transaction.atomic():
        taken = Stream.objects.live().filter(application=application, name=name).exists()
        if taken or Pull.objects.filter(application=application, stream_name=name, state__in=ACTIVE_STATES).exists():
            raise StreamExists(name)
        try:
            pull = Pull.objects.create(
                application=application,
                stream_name=name,
                urls=urls,
                source_type=source_type,
                loop=properties.get("loop", False),
                persistent=properties.get("persistent", False),
                no_input_failover_timeout_ms=properties.get("noInputFailoverTimeoutMs", DEFAULT_NO_INPUT_FAILOVER_MS),
                unused_stream_deletion_timeout_ms=properties.get(
                    "unusedStreamDeletionTimeoutMs", DEFAULT_UNUSED_DELETION_MS
                ),
                ignore_rtcp_sr_timestamp=properties.get("ignoreRtcpSRTimestamp", False),
            )
        except IntegrityError as error:
            raise StreamExists(name) from error
        jobs.dispatch(pull, pull_task())
    return pull


def wait_for_first_outcome(pull: Pull, timeout: float, interval: float = 0.1) -> Pull:
    """Wait until the pulled stream is live (the engine reported it), the pull failed or stopped,
    or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    live = Stream.objects.live().filter(application_id=pull.application_id, name=pull.stream_name)
    while True:
        pull.refresh_from_db()
        if pull.state in (JobState.ERROR, JobState.STOPPED) or (pull.started_at is not None and live.exists()):
            return pull
        if time.monotonic() >= deadline:
            return pull
        time.sleep(interval)


def active_pull_of(application: Application, name: str) -> Pull | None:
    return Pull.objects.filter(application=application, stream_name=name, state__in=ACTIVE_STATES).first()


def stop_pull(pull: Pull) -> Pull:
    with transaction.atomic():
        pull = Pull.objects.select_for_update().get(pk=pull.pk)
        pull.request_stop()
    return pull


def label_pulled_stream(stream: Stream) -> None:
    """A stream that a pull feeds shows the pull's source type instead of the engine's "Rtmp"."""
    pull = active_pull_of(stream.application, stream.name)
    if pull is not None and stream.source_type != pull.source_type:
        Stream.objects.filter(pk=stream.pk).update(source_type=pull.source_type)
        stream.source_type = pull.source_type
