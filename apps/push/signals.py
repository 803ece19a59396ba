"""Reserved pushes start when their stream goes live (OME's reserved-task behaviour)."""

from django.dispatch import receiver

from apps.push.services import start_reserved_pushes
from apps.streams.signals import stream_went_live


@receiver(stream_went_live, dispatch_uid="push-start-reserved")
def start_pushes_of_new_stream(sender, stream, **kwargs) -> None:
    start_reserved_pushes(stream)
