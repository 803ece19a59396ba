"""Named states of engine nodes."""

from django.db import models


class ProcessingState(models.TextChoices):
    """WCS CDN's processingState: whether a node takes part in placing new streams."""

    NEW_STREAMS_ALLOWED = "NEW_STREAMS_ALLOWED", "new streams allowed"
    GROUP_CONNECTION_ALLOWED = "GROUP_CONNECTION_ALLOWED", "no new streams"
