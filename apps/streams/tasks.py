"""Short media tasks on a live stream, run by media workers: snapshots."""

from __future__ import annotations

import base64

from celery import shared_task

from apps.streams.models import Stream
from media_engine.jobs.snapshot import snapshot_jpeg

SNAPSHOT_TIMEOUT = 5.0


@shared_task
def take_snapshot(stream_pk: int) -> str | None:
    """The stream's current picture as base64 JPEG; None if the stream is not live any more."""
    stream = Stream.objects.live().select_related("node", "application").filter(pk=stream_pk).first()
    if stream is None or stream.node is None:
        return None
    jpeg = snapshot_jpeg(stream.node.rtmp_url(stream.application.name, stream.name), SNAPSHOT_TIMEOUT)
    return base64.b64encode(jpeg).decode()
