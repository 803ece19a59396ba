"""A stream going live is transcoded by each output profile of its application that encodes something."""

from django.dispatch import receiver

from apps.streams.signals import stream_went_live
from apps.transcoding.services import start_transcodes


@receiver(stream_went_live, dispatch_uid="transcoding-start")
def transcode_new_stream(sender, stream, **kwargs) -> None:
    start_transcodes(stream)
