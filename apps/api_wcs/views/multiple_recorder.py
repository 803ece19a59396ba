"""WCS /multipleRecorder/*: several live streams recorded into one MP4 (a track per stream's video
and audio), on the multi_recorder service."""

from __future__ import annotations

from rest_framework import serializers

from apps.api_wcs.errors import WcsError
from apps.api_wcs.views.base import Method, found, wcs_application
from apps.multi_recorder.models import MultiRecorder
from apps.multi_recorder.services import (
    InvalidUri,
    MemberConflict,
    NotAMember,
    RecorderConflict,
    active_recorders,
    add_stream,
    create_multi_recorder,
    live_stream_by_session,
    recorder_name,
    remove_stream,
    stop_multi_recorder,
)

NOT_FOUND = "Not found"


class RecorderUri(serializers.Serializer):
    uri = serializers.CharField(max_length=200, help_text="multi-recorder://NAME")


class RecorderMember(RecorderUri):
    mediaSessionId = serializers.CharField(max_length=100, help_text="The mediaSessionId of a live stream.")


class MultipleRecorderObject(serializers.Serializer):
    """WCS's MultipleRecorder (with its spelling "mediaSessionsId")."""

    mediaSessionsId = serializers.ListField(child=serializers.CharField())
    uri = serializers.CharField()
    fileName = serializers.CharField(help_text="The uri with '://' replaced by '___', and '.mp4'.")


def multiple_recorder_to_wcs(recorder: MultiRecorder) -> dict:
    return {"mediaSessionsId": list(recorder.members), "uri": recorder.uri, "fileName": recorder.file_name}


def recorder_of(uri: str) -> MultiRecorder:
    recorder = active_recorders(wcs_application()).filter(uri=uri).first()
    if recorder is None:
        raise WcsError(404, NOT_FOUND)
    return recorder


def startup(data: dict) -> None:
    try:
        create_multi_recorder(wcs_application(), data["uri"])
    except InvalidUri as error:
        raise WcsError(400, f"Bad request: uri: {error}") from None
    except RecorderConflict:
        raise WcsError(409, "Conflict") from None


def add(data: dict) -> None:
    recorder = recorder_of(data["uri"])
    stream = live_stream_by_session(recorder.application, data["mediaSessionId"])
    if stream is None:
        raise WcsError(404, NOT_FOUND)
    try:
        add_stream(recorder, stream)
    except MemberConflict:
        raise WcsError(409, "Conflict") from None


def find_all(data: dict) -> list[dict]:
    return found([multiple_recorder_to_wcs(r) for r in active_recorders(wcs_application())], NOT_FOUND)


def remove(data: dict) -> None:
    try:
        remove_stream(recorder_of(data["uri"]), data["mediaSessionId"])
    except NotAMember:
        raise WcsError(404, NOT_FOUND) from None


def terminate(data: dict) -> None:
    try:
        recorder_name(data["uri"])
    except InvalidUri:
        raise WcsError(409, "Bad uri format") from None
    stop_multi_recorder(recorder_of(data["uri"]))


INTERNAL = (500, "Internal error")
METHODS = [
    Method("multipleRecorder", "startup", startup, RecorderUri, None, "Launch multiple streams recorder",
           ((400, "Bad request"), (409, "Conflict"), INTERNAL)),
    Method("multipleRecorder", "add", add, RecorderMember, None, "Add the stream with mediaSessionId to the recorder",
           ((404, NOT_FOUND), (409, "Conflict"), INTERNAL)),
    Method("multipleRecorder", "find_all", find_all, response=MultipleRecorderObject(many=True),
           summary="Find all multiple stream recorders", errors=((404, NOT_FOUND),)),
    Method("multipleRecorder", "remove", remove, RecorderMember, None,
           "Remove the stream with mediaSessionId from the recorder", ((404, NOT_FOUND), INTERNAL)),
    Method("multipleRecorder", "terminate", terminate, RecorderUri, None, "Stop the multiple streams recorder",
           ((404, NOT_FOUND), (409, "Bad uri format"), INTERNAL)),
]  # fmt: skip
