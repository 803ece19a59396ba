"""Push tasks: create (validated, reserved until the stream is live), stop, and hand to Celery."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.hosting.models import Application
from apps.jobs import services as jobs
from apps.jobs.choices import ACTIVE_STATES
from apps.push.models import Push
from apps.security.outbound import check_outbound_url
from apps.streams.models import Stream


class PushConflict(Exception):
    """An active push with this id already exists in the application."""


def push_task():
    from apps.push.tasks import push_stream

    return push_stream


def create_push(application: Application, spec: dict, **audio) -> Push:
    """A push from an OME-shaped ``spec``; ``audio`` sets the audio-control fields (WCS transponders:
    ``audio_control=True``, maybe ``audio_muted``, ``sound_file``, ``sound_loop``). A target the
    outbound policy refuses raises OutboundRefused (a ValueError)."""
    check_outbound_url(spec["url"])
    with transaction.atomic():
        if Push.objects.filter(application=application, push_id=spec["id"], state__in=ACTIVE_STATES).exists():
            raise PushConflict(spec["id"])
        try:
            push = Push.objects.create(
                application=application,
                push_id=spec["id"],
                stream_name=spec["stream"]["name"],
                variant_names=spec["stream"].get("variantNames", []),
                track_ids=spec["stream"].get("trackIds", []),
                protocol=spec["protocol"],
                url=spec["url"],
                stream_key=spec.get("streamKey", ""),
                **audio,
            )
        except IntegrityError as error:
            raise PushConflict(spec["id"]) from error
        jobs.dispatch_if_live(push, push_task())
    return push


def start_reserved_pushes(stream: Stream) -> None:
    jobs.start_reserved(Push, push_task(), stream)


def stop_push(push: Push) -> Push:
    with transaction.atomic():
        push = Push.objects.select_for_update().get(pk=push.pk)
        push.request_stop()
    return push


class AudioNotControlled(Exception):
    """The push copies its audio (it was not created with audio control)."""


def set_audio(push: Push, **changes) -> Push:
    """Change a running push's audio (``audio_muted``, ``sound_file``, ``sound_loop``); a new
    ``sound_file`` starts from its beginning. The media job reads it within half a second."""
    with transaction.atomic():
        push = Push.objects.select_for_update().get(pk=push.pk)
        if not push.audio_control:
            raise AudioNotControlled(push.push_id)
        for field, value in changes.items():
            setattr(push, field, value)
        fields = list(changes)
        if changes.get("sound_file"):
            push.sound_serial += 1
            fields.append("sound_serial")
        push.save(update_fields=fields)
    return push
