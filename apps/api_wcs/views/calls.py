"""WCS /call/* (SIP calls): StreamHub has no SIP gateway yet. Finds answer what is true (no call),
and starting a call is refused with a clear 500 rather than pretending."""

from __future__ import annotations

from rest_framework import serializers

from apps.api_wcs.errors import WcsError
from apps.api_wcs.views.base import Method


class CallStartup(serializers.Serializer):
    callId = serializers.CharField()
    callee = serializers.CharField(required=False)
    rtmpStream = serializers.CharField(required=False)
    rtmpUrl = serializers.CharField(required=False)
    hasAudio = serializers.BooleanField(required=False)
    hasVideo = serializers.BooleanField(required=False)
    sipLogin = serializers.CharField(required=False)
    sipAuthenticationName = serializers.CharField(required=False)
    sipPassword = serializers.CharField(required=False, write_only=True)
    sipDomain = serializers.CharField(required=False)
    sipOutboundProxy = serializers.CharField(required=False)
    sipPort = serializers.IntegerField(required=False)
    appKey = serializers.CharField(required=False)
    sipRegisterRequired = serializers.BooleanField(required=False)
    toStream = serializers.CharField(required=False)
    visibleName = serializers.CharField(required=False)


class CallFilter(serializers.Serializer):
    callId = serializers.CharField(required=False)
    callee = serializers.CharField(required=False)
    rtmpUrl = serializers.CharField(required=False)
    status = serializers.CharField(required=False)


class CallId(serializers.Serializer):
    callId = serializers.CharField()


class SendDtmf(CallId):
    dtmf = serializers.CharField()
    type = serializers.CharField(required=False)


class InjectSound(CallId):
    fileName = serializers.CharField()


class InjectStream(CallId):
    streamName = serializers.CharField()


def startup(data: dict) -> None:
    raise WcsError(500, "Internal error: SIP gateway not configured")


def no_call(data: dict) -> None:
    raise WcsError(404, "Call not found")


NOT_FOUND = ((404, "Call not found"),)
METHODS = [
    Method("call", "startup", startup, CallStartup, None, "Make a SIP call (no SIP gateway is configured)",
           ((409, "Conflict"), (500, "SIP gateway not configured"))),
    Method("call", "find_all", no_call, summary="Find all SIP calls", errors=NOT_FOUND),
    Method("call", "find", no_call, CallFilter, None, "Find SIP calls by filter", NOT_FOUND),
    Method("call", "terminate", no_call, CallId, None, "Hang up a SIP call", NOT_FOUND),
    Method("call", "send_dtmf", no_call, SendDtmf, None, "Send DTMF in a SIP call", NOT_FOUND),
    Method("call", "inject_sound", no_call, InjectSound, None, "Inject audio from a file", NOT_FOUND),
    Method("call/inject_stream", "startup", no_call, InjectStream, None, "Redirect a stream to a SIP call",
           NOT_FOUND),
    Method("call/inject_stream", "terminate", no_call, CallId, None, "Stop redirecting a stream", NOT_FOUND),
]  # fmt: skip
