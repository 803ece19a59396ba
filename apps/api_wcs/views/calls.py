"""WCS /call/* (SIP calls): place a call through a real SIP user agent (apps.calls runs it on a
media worker), follow it, hang it up, send DTMF, and play a sound file or a live stream into it.

The table in the spec lists the methods, their errors and that /call/startup answers ``void``;
where it is silent StreamHub chooses, as noted: a request that cannot be placed (no sipDomain,
a bad rtmpUrl) is a 400; DTMF to a call that is not established is a 500 with the status."""

from __future__ import annotations

from rest_framework import serializers

from apps.api_wcs.errors import WcsError
from apps.api_wcs.views.base import Method, found, wcs_application
from apps.calls import services
from apps.calls.models import Call


class CallStartup(serializers.Serializer):
    callId = serializers.CharField(max_length=255)
    callee = serializers.CharField(max_length=255, required=False)
    rtmpStream = serializers.CharField(max_length=255, required=False, allow_blank=True)
    rtmpUrl = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    hasAudio = serializers.BooleanField(required=False, default=True)
    hasVideo = serializers.BooleanField(required=False, default=False)
    sipLogin = serializers.CharField(max_length=255, required=False, allow_blank=True)
    sipAuthenticationName = serializers.CharField(max_length=255, required=False, allow_blank=True)
    sipPassword = serializers.CharField(max_length=255, required=False, allow_blank=True, write_only=True)
    sipDomain = serializers.CharField(max_length=255, required=False)
    sipOutboundProxy = serializers.CharField(max_length=255, required=False, allow_blank=True)
    sipPort = serializers.IntegerField(required=False)
    appKey = serializers.CharField(max_length=255, required=False, allow_blank=True)
    sipRegisterRequired = serializers.BooleanField(required=False, default=False)
    toStream = serializers.CharField(max_length=255, required=False, allow_blank=True)
    visibleName = serializers.CharField(max_length=255, required=False, allow_blank=True)


class CallFilter(serializers.Serializer):
    callId = serializers.CharField(required=False)
    callee = serializers.CharField(required=False)
    rtmpUrl = serializers.CharField(required=False)
    status = serializers.CharField(required=False)


class CallId(serializers.Serializer):
    callId = serializers.CharField()


class SendDtmf(CallId):
    dtmf = serializers.CharField(max_length=32)
    type = serializers.CharField(required=False, help_text="RFC2833 (default), INFO or INFO_RELAY.")


class InjectSound(CallId):
    fileName = serializers.CharField(max_length=1000, help_text="An audio file under the media root.")


class InjectStream(CallId):
    streamName = serializers.CharField(max_length=255)


class CallObject(serializers.Serializer):
    callId = serializers.CharField()
    callee = serializers.CharField()
    caller = serializers.CharField()
    visibleName = serializers.CharField()
    status = serializers.CharField(help_text="TRYING, RINGING, ESTABLISHED, FINISHED, FAILED...")
    sipMessage = serializers.CharField(help_text="Why the call ended or failed, e.g. '486 Busy Here'.")
    incoming = serializers.BooleanField()
    hasAudio = serializers.BooleanField()
    hasVideo = serializers.BooleanField()
    rtmpUrl = serializers.CharField()
    rtmpStream = serializers.CharField()
    toStream = serializers.CharField()
    farEnd = serializers.CharField()
    codec = serializers.CharField()
    duration = serializers.IntegerField(help_text="Milliseconds since the far end answered.")


def call_to_wcs(call: Call) -> dict:
    duration = call.duration
    return {
        "callId": call.call_id,
        "callee": call.callee,
        "caller": f"{call.sip_login}@{call.sip_domain}" if call.sip_login else call.sip_domain,
        "visibleName": call.visible_name,
        "status": call.status,
        "sipMessage": call.reason,
        "incoming": False,
        "hasAudio": call.has_audio,
        "hasVideo": call.has_video,
        "rtmpUrl": call.rtmp_url,
        "rtmpStream": call.rtmp_stream,
        "toStream": call.stream_name,
        "farEnd": call.far_end,
        "codec": call.codec,
        "duration": int(duration.total_seconds() * 1000) if duration is not None else 0,
    }


def live_call(call_id: str) -> Call:
    call = services.live_call(call_id)
    if call is None:
        raise WcsError(404, "Call not found")
    return call


def startup(data: dict) -> None:
    try:
        services.start_call(wcs_application(), data)
    except services.CallConflict as error:
        raise WcsError(409, "Conflict") from error
    except ValueError as error:
        raise WcsError(400, f"Bad request: {error}") from error


def find_all(data: dict) -> list[dict]:
    return found([call_to_wcs(call) for call in services.find_calls({})], "Call not found")


def find(data: dict) -> list[dict]:
    return found([call_to_wcs(call) for call in services.find_calls(data)], "Call not found")


def terminate(data: dict) -> None:
    services.terminate_call(live_call(data["callId"]))


def send_dtmf(data: dict) -> None:
    call = live_call(data["callId"])
    try:
        services.send_dtmf(call, data["dtmf"], data.get("type"))
    except ValueError as error:
        raise WcsError(400, f"Bad request: {error}") from error
    except services.CallNotEstablished as error:
        raise WcsError(500, f"Internal error: the call is not established ({error})") from error


def inject_sound(data: dict) -> None:
    call = live_call(data["callId"])
    try:
        services.inject_sound(call, data["fileName"])
    except services.SourceNotFound as error:
        raise WcsError(404, "File not found") from error


def inject_stream_startup(data: dict) -> None:
    call = live_call(data["callId"])
    try:
        services.inject_stream(call, data["streamName"])
    except services.SourceNotFound as error:
        raise WcsError(404, "Stream not found") from error


def inject_stream_terminate(data: dict) -> None:
    services.stop_injecting(live_call(data["callId"]))


NOT_FOUND = ((404, "Call not found"),)
INTERNAL = ((500, "Internal error"),)
METHODS = [
    Method("call", "startup", startup, CallStartup, None, "Make a SIP call",
           ((400, "Bad request"), (409, "Conflict"), *INTERNAL)),
    Method("call", "find_all", find_all, response=CallObject(many=True), summary="Find all SIP calls",
           errors=NOT_FOUND),
    Method("call", "find", find, CallFilter, CallObject(many=True), "Find SIP calls by filter",
           (*NOT_FOUND, *INTERNAL)),
    Method("call", "terminate", terminate, CallId, None, "Hang up and terminate the SIP call", (*NOT_FOUND, *INTERNAL)),
    Method("call", "send_dtmf", send_dtmf, SendDtmf, None, "Send DTMF within the established SIP call",
           (*NOT_FOUND, *INTERNAL)),
    Method("call", "inject_sound", inject_sound, InjectSound, None, "Inject audio from the specified file",
           ((404, "Call not found/File not found"), *INTERNAL)),
    Method("call/inject_stream", "startup", inject_stream_startup, InjectStream, None,
           "Redirecting a stream to a SIP call", ((404, "Call not found/Stream not found"), *INTERNAL)),
    Method("call/inject_stream", "terminate", inject_stream_terminate, CallId, None,
           "Terminate redirecting a stream to a SIP call", (*NOT_FOUND, *INTERNAL)),
]  # fmt: skip
