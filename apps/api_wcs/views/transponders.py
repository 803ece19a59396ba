"""WCS /push/*: transponders that re-publish a stream to an RTMP URL, on the push service. A
transponder re-encodes its audio, so that /push/mute and /push/sound_on change what it sends
without reconnecting (media_engine/jobs/audio_control.py)."""

from __future__ import annotations

import socket
import uuid
from urllib.parse import urlsplit

from rest_framework import serializers

from apps.api_wcs.errors import WcsError
from apps.api_wcs.presenters import transponder_to_wcs
from apps.api_wcs.views.base import MediaSessionId, Method, found, wcs_application
from apps.jobs.choices import ACTIVE_STATES
from apps.jobs.paths import UnsafePath, confine
from apps.push.models import Push
from apps.push.services import AudioNotControlled, PushConflict, create_push, set_audio, stop_push
from apps.security.outbound import check_outbound_url
from media_engine.jobs.audio_control import check_sound_file
from media_engine.jobs.push import validate_push_target


class PushStartup(serializers.Serializer):
    streamName = serializers.CharField(max_length=255)
    rtmpUrl = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    options = serializers.DictField(
        required=False,
        help_text='Audio from the start: {"action": "mute"} or '
        '{"action": "sound_on", "soundFile": "a.wav", "loop": true}.',
    )


class SoundOn(serializers.Serializer):
    mediaSessionId = serializers.CharField()
    soundFile = serializers.CharField(
        max_length=1000, help_text="A RIFF WAV (or other audio) file under the media root."
    )
    loop = serializers.BooleanField(required=False, default=False)


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
        check_outbound_url(url)
    except ValueError as error:
        raise WcsError(400, f"Bad request: {error}") from error
    except OSError as error:
        raise WcsError(400, f"Bad request: {urlsplit(url).hostname} cannot be resolved") from error
    audio = {"audio_control": True, **startup_audio(data.get("options") or {})}
    if any(push.target == url for push in active_pushes().filter(stream_name=data["streamName"])):
        raise WcsError(409, "Conflict: a transponder of this stream to this rtmpUrl exists")
    spec = {"id": str(uuid.uuid4()), "stream": {"name": data["streamName"]}, "protocol": "rtmp", "url": url}
    try:
        push = create_push(wcs_application(), spec, **audio)
    except PushConflict as error:
        raise WcsError(409, "Conflict") from error
    return transponder_to_wcs(push)


def startup_audio(options: dict) -> dict:
    action = options.get("action")
    if not action:
        return {}
    if action == "mute":
        return {"audio_muted": True}
    if action == "sound_on":
        return {"sound_file": sound_file(options.get("soundFile")), "sound_loop": bool(options.get("loop", False))}
    raise WcsError(400, f"Bad request: unknown options.action {action!r} (mute or sound_on)")


def sound_file(name: object) -> str:
    """The name of a readable sound file under the media root (WCS's media folder), as given."""
    if not isinstance(name, str) or not name.strip():
        raise WcsError(400, "Bad request: soundFile is not set")
    try:
        path = confine(name.strip())
    except UnsafePath:
        raise WcsError(404, "No such file") from None
    if not path.is_file():
        raise WcsError(404, "No such file")
    try:
        check_sound_file(str(path))
    except ValueError as error:
        raise WcsError(400, f"Bad request: {name}: {error}") from None
    return name.strip()


def transponder(media_session_id: str) -> Push:
    push = active_pushes().filter(push_id=media_session_id).first()
    if push is None:
        raise WcsError(404, "Transponder not found")
    return push


def change_audio(push: Push, **changes) -> None:
    try:
        set_audio(push, **changes)
    except AudioNotControlled:
        raise WcsError(409, "Conflict: this transponder copies its audio (started by the OME API)") from None


def mute(data: dict) -> None:
    push = transponder(data["mediaSessionId"])
    if push.audio_muted:
        raise WcsError(409, "Conflict: the transponder is muted already")
    change_audio(push, audio_muted=True)


def unmute(data: dict) -> None:
    push = transponder(data["mediaSessionId"])
    if not push.audio_muted:
        raise WcsError(409, "Conflict: the transponder is not muted")
    change_audio(push, audio_muted=False)


def sound_on(data: dict) -> None:
    push = transponder(data["mediaSessionId"])
    change_audio(push, sound_file=sound_file(data["soundFile"]), sound_loop=data["loop"])


def sound_off(data: dict) -> None:
    change_audio(transponder(data["mediaSessionId"]), sound_file="", sound_loop=False)


def find(data: dict) -> list[dict]:
    pushes = active_pushes()
    if data.get("streamName"):
        pushes = pushes.filter(stream_name=data["streamName"])
    items = [push for push in pushes if not data.get("rtmpUrl") or push.target == data["rtmpUrl"]]
    return found([transponder_to_wcs(push) for push in items], "Transponder not found")


def find_all(data: dict) -> list[dict]:
    return found([transponder_to_wcs(push) for push in active_pushes()], "Transponder not found")


def terminate(data: dict) -> None:
    stop_push(transponder(data["mediaSessionId"]))


NOT_FOUND = ((404, "Transponder not found"),)
METHODS = [
    Method("push", "startup", startup, PushStartup, TransponderObject, "Re-publish a stream to an RTMP URL",
           ((400, "Bad request"), (409, "Conflict"), (500, "Internal error"))),
    Method("push", "find", find, PushFilter, TransponderObject(many=True), "Find transponders by filter", NOT_FOUND),
    Method("push", "find_all", find_all, response=TransponderObject(many=True), summary="Find all transponders",
           errors=NOT_FOUND),
    Method("push", "terminate", terminate, MediaSessionId, None, "Terminate a transponder", NOT_FOUND),
    Method("push", "mute", mute, MediaSessionId, None, "Mute a transponder's audio",
           (*NOT_FOUND, (409, "Conflict"), (500, "Internal error"))),
    Method("push", "unmute", unmute, MediaSessionId, None, "Unmute a transponder's audio",
           (*NOT_FOUND, (409, "Conflict"), (500, "Internal error"))),
    Method("push", "sound_on", sound_on, SoundOn, None, "Mix a sound file (under the media root) into the audio",
           (*NOT_FOUND, (404, "No such file"), (400, "Bad request"), (500, "Internal error"))),
    Method("push", "sound_off", sound_off, MediaSessionId, None, "Stop injecting the sound",
           (*NOT_FOUND, (500, "Internal error"))),
]  # fmt: skip
