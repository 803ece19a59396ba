"""Named states of engine nodes."""

from django.db import models


class ProcessingState(models.TextChoices):
    """WCS CDN's processingState: whether a node takes part in placing new streams."""

    NEW_STREAMS_ALLOWED = "NEW_STREAMS_ALLOWED", "new streams allowed"
    GROUP_CONNECTION_ALLOWED = "GROUP_CONNECTION_ALLOWED", "no new streams"


class NodeRole(models.TextChoices):
    """What a node does in an origin-edge cluster (WCS CDN roles, OME origin/edge)."""

    ORIGIN = "origin", "origin"  # takes publishes, pulls and transcodes; edges pull from it
    EDGE = "edge", "edge"  # refuses publishes; plays the cluster's streams by pulling them on demand
    TRANSCODER = "transcoder", "transcoder"  # holds CDN profile renditions ({stream}-{profile}) for edges
