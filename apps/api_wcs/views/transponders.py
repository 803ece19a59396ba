"""WCS /push/*: transponders that re-publish a stream to an RTMP URL, on the push service."""

from __future__ import annotations

import socket
import uuid
from urllib.parse import urlsplit

from rest_framework import serializers

from apps.api_wcs.errors import WcsError
from apps.api_wcs.presenters import transponder_to_wcs
from apps.api_wcs.views.base import MediaSessionId, Method, found, wcs_application
from apps.jobs.choices import ACTIVE_STATES
from apps.push.models import Push
from apps.push.services import PushConflict, create_push, stop_push
from media_engine.jobs.push import validate_push_target


class PushStartup(serializers.Serializer):
    streamName = serializers.CharField(max_length=255)
    rtmpUrl = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    options = serializers.DictField(required=False, help_text="Audio actions (mute, sound_on) are not supported yet.")


class PushFilter(serializers.Serializer):
    streamName = serializers.CharField(required=False)
    rtmpUrl = serializers.CharField(required=False)


class TransponderObject(serializers.Serializer):
    mediaSessionId = serializers.CharField()
    streamName = serializers.CharField()
    rtmpUrl = serializers.CharField()
    status = serializers.CharField()
    muted = serializers.BooleanField()
    soundEnabled = serializers.BooleanField()


def active_pushes():
    return Push.objects.filter(application=wcs_application(), protocol="rtmp", state__in=ACTIVE_STATES).select_related(
        "application"
    )


def startup(data: dict) -> dict:
    url = (data.get("rtmpUrl") or "").strip()
    if not url:
        raise WcsError(400, "Bad request: rtmpUrl is not set")
    try:
        validate_push_target("rtmp", url)
        socket.getaddrinfo(urlsplit(url).hostname, None)
    except ValueError as error:
        raise WcsError(400, f"Bad request: {error}") from error
    except OSError as error:
        raise WcsError(400, f"Bad request: {urlsplit(url).hostname} cannot be resolved") from error
    if (data.get("options") or {}).get("action"):
        raise WcsError(400, "Bad request: transponder audio actions (mute, sound_on) are not supported yet")
    if any(push.target == url for push in active_pushes().filter(stream_name=data["streamName"])):
        raise WcsError(409, "Conflict: a transponder of this stream to this rtmpUrl exists")
    spec = {"id": str(uuid.uuid4()), "stream": {"name": data["streamName"]}, "protocol": "rtmp", "url": url}
    try:
        push = create_push(wcs_application(), spec)
    except PushConflict as error:
        raise WcsError(409, "Conflict") from error
    return transponder_to_wcs(push)


def find(data: dict) -> list[dict]:
    pushes = active_pushes()
    if data.get("streamName"):
        pushes = pushes.filter(stream_name=data["streamName"])
    items = [push for push in pushes if not data.get("rtmpUrl") or push.target == data["rtmpUrl"]]
    return found([transponder_to_wcs(push) for push in items], "Transponder not found")


def find_all(data: dict) -> list[dict]:
    return found([transponder_to_wcs(push) for push in active_pushes()], "Transponder not found")


def terminate(data: dict) -> None:
    push = active_pushes().filter(push_id=data["mediaSessionId"]).first()
    if push is None:
        raise WcsError(404, "Transponder not found")
    stop_push(push)


NOT_FOUND = ((404, "Transponder not found"),)
METHODS = [
    Method("push", "startup", startup, PushStartup, TransponderObject, "Re-publish a stream to an RTMP URL",
           ((400, "Bad request"), (409, "Conflict"), (500, "Internal error"))),
    Method("push", "find", find, PushFilter, TransponderObject(many=True), "Find transponders by filter", NOT_FOUND),
    Method("push", "find_all", find_all, response=TransponderObject(many=True), summary="Find all transponders",
           errors=NOT_FOUND),
    Method("push", "terminate", terminate, MediaSessionId, None, "Terminate a transponder", NOT_FOUND),
]  # fmt: skip
