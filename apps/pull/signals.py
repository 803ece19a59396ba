"""A pulled stream going live shows where it comes from (sourceType "RtspPull"...)."""

from django.dispatch import receiver

from apps.pull.services import label_pulled_stream
from apps.streams.signals import stream_went_live


@receiver(stream_went_live, dispatch_uid="pull-source-type")
def label_pulled_streams(sender, stream, **kwargs) -> None:
    label_pulled_stream(stream)
