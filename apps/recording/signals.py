"""Reserved records start when their stream goes live (OME's reserved-task behaviour)."""

from django.dispatch import receiver

from apps.recording.services import start_reserved_records
from apps.streams.signals import stream_went_live


@receiver(stream_went_live, dispatch_uid="recording-start-reserved")
def start_records_of_new_stream(sender, stream, **kwargs) -> None:
    start_reserved_records(stream)
