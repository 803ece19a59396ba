"""Named constants of access control: OME's protocol names and the webhook's default actions."""

from django.db import models

# OME's names in signedPolicy/admissionWebhooks "enables": providers publish, publishers play.
PROVIDERS = ("rtmp", "srt", "webrtc")
PUBLISHERS = ("hls", "llhls", "webrtc", "rtmp")


class WebhookDefaultAction(models.TextChoices):
    """What the engine does when the admission webhook does not answer usably (timeout, error)."""

    DENY = "deny", "deny"
    ALLOW = "allow", "allow"


class Direction(models.TextChoices):
    PUBLISH = "publish", "publish"
    PLAY = "play", "play"
