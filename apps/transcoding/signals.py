"""A stream going live is transcoded by each output profile of its application that encodes something."""

from django.dispatch import receiver

from apps.streams.signals import stream_went_live
from apps.transcoding.services import start_transcodes
from apps.transcoding.transcoders import start_reserved_wcs_transcoders


@receiver(stream_went_live, dispatch_uid="transcoding-start")
def transcode_new_stream(sender, stream, **kwargs) -> None:
    start_transcodes(stream)


@receiver(stream_went_live, dispatch_uid="transcoding-start-reserved-wcs")
def start_wcs_transcoders_of_new_stream(sender, stream, **kwargs) -> None:
    start_reserved_wcs_transcoders(stream)
