"""Choices of SIP calls: the call statuses WCS reports, DTMF methods, and what a command asks."""

from django.db import models


class CallStatus(models.TextChoices):
    # The names WCS uses for a call's status (its REST API and client events).
    PENDING = "PENDING", "Pending (registering or queued)"
    TRYING = "TRYING", "Trying"
    RINGING = "RINGING", "Ringing"
    SESSION_PROGRESS = "SESSION_PROGRESS", "Session progress"
    ESTABLISHED = "ESTABLISHED", "Established"
    FINISHED = "FINISHED", "Finished"
    FAILED = "FAILED", "Failed"


ENDED_STATUSES = [CallStatus.FINISHED, CallStatus.FAILED]


class DtmfType(models.TextChoices):
    # WCS's `type` of /call/send_dtmf: RFC 2833 (4733) telephone events in RTP, or SIP INFO.
    RFC2833 = "RFC2833", "RFC 2833/4733 telephone events"
    INFO = "INFO", "SIP INFO"
    INFO_RELAY = "INFO_RELAY", "SIP INFO (relayed)"


class CommandKind(models.TextChoices):
    DTMF = "dtmf", "Send DTMF"
    INJECT = "inject", "Inject sound or stream"
    INJECT_STOP = "inject_stop", "Stop injecting"


class InjectKind(models.TextChoices):
    NONE = "", "Nothing"
    SOUND = "sound", "Sound file"
    STREAM = "stream", "Live stream"
