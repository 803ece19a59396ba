"""Push tasks: create (validated, reserved until the stream is live), stop, and hand to Celery."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.hosting.models import Application
from apps.jobs import services as jobs
from apps.jobs.choices import ACTIVE_STATES
from apps.push.models import Push
from apps.streams.models import Stream


class PushConflict(Exception):
    """An active push with this id already exists in the application."""


def push_task():
    from apps.push.tasks import push_stream

    return push_stream


def create_push(application: Application, spec: dict) -> Push:
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
