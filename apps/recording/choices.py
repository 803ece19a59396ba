"""Named choices of the recording app."""

from django.db import models


class SegmentationRule(models.TextChoices):
    CONTINUITY = "continuity", "Continuous timestamps across files"
    DISCONTINUITY = "discontinuity", "Each file starts at zero"


# OME's File publisher defaults, relative to the media root.
DEFAULT_FILE_PATH = "${VirtualHost}/${Application}/${Stream}/${StartTime:YYYYMMDDhhmmss}_${Sequence}.mp4"
DEFAULT_INFO_PATH = "${VirtualHost}/${Application}/${Stream}/${Id}.xml"
