"""WCS /stream/* and /recorder/*: live streams (find, terminate, snapshot, data to subscribers) and
their recordings, on the streams and recording services."""

from __future__ import annotations

from celery.exceptions import TimeoutError as CeleryTimeout
from rest_framework import serializers

from apps.api_wcs.app_keys import key_matches, wcs_application_ids
from apps.api_wcs.errors import WcsError
from apps.api_wcs.presenters import recorder_to_wcs, session_id, stream_to_wcs
from apps.api_wcs.views.base import MediaSessionId, Method, found
from apps.jobs.choices import ACTIVE_STATES
from apps.pull.services import active_pull_of, stop_pull
from apps.recording.models import Record
from apps.recording.services import RecordConflict, create_record, stop_record
from apps.security.parsers import PayloadField
from apps.streams.models import Stream
from apps.streams.services import request_stop, send_to_subscribers
from apps.streams.tasks import SNAPSHOT_TIMEOUT, take_snapshot
from streamhub.db_changes import cached_until_changed
from streamhub.rendered_once import RenderedOnceList

# WCS record files: stream-<mediaSessionId>-<start time>.mp4 (WCS adds a random suffix instead).
RECORD_FILE = "${Stream}-${Id}-${StartTime:YYYYMMDDhhmmss}.mp4"
MAX_ROTATION_SECONDS = 86_400


class StreamFilter(serializers.Serializer):
    name = serializers.CharField(required=False)
    mediaSessionId = serializers.CharField(required=False)
    sessionId = serializers.CharField(required=False)
    appKey = serializers.CharField(required=False)
    appKeyName = serializers.CharField(required=False)
    status = serializers.CharField(required=False)
    published = serializers.BooleanField(required=False)
    nodeId = serializers.CharField(required=False)


class StreamTerminateFilter(StreamFilter):
    mediaSessionId = serializers.JSONField(required=False, help_text="One id or a list of ids.")


class StreamName(serializers.Serializer):
    streamName = serializers.CharField()


class EventSend(StreamName):
    payload = PayloadField(help_text="Any JSON, delivered as it is (at most WCS_MAX_EVENT_PAYLOAD_BYTES).")


class RecorderStartup(MediaSessionId):
    config = serializers.DictField(
        required=False, help_text='{"rotation": seconds per file} (other WCS recorder settings are ignored)'
    )


class SnapshotAnswer(serializers.Serializer):
    data = serializers.CharField(help_text="The current picture, base64 JPEG.")


class StreamObject(serializers.Serializer):
    """For the OpenAPI schema: WCS's Stream object."""

    appKey = serializers.CharField()
    sessionId = serializers.CharField()
    mediaSessionId = serializers.CharField()
    name = serializers.CharField()
    published = serializers.BooleanField()
    hasVideo = serializers.BooleanField()
    hasAudio = serializers.BooleanField()
    status = serializers.CharField()
    sdp = serializers.CharField()
    audioCodec = serializers.CharField()
    videoCodec = serializers.CharField()
    record = serializers.BooleanField()
    recordName = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    bitrate = serializers.IntegerField()
    minBitrate = serializers.IntegerField()
    maxBitrate = serializers.IntegerField()
    quality = serializers.IntegerField()
    history = serializers.BooleanField()


class RecorderObject(serializers.Serializer):
    mediaSessionId = serializers.CharField()
    streamName = serializers.CharField()
    status = serializers.CharField()
    fileName = serializers.CharField()
    recordBytes = serializers.IntegerField()
    recordTime = serializers.IntegerField()


# -- helpers --------------------------------------------------------------------------------------


def live_streams():
    """The live streams of the WCS application and of every application an appKey maps to."""
    return (
        Stream.objects.live()
        .filter(application_id__in=wcs_application_ids())
        .select_related("application__virtual_host", "node")
    )


def active_records(streams: list[Stream]) -> dict[tuple[int, str], Record]:
    """The active record of each of ``streams`` that has one (at most one each: a constraint), in one query."""
    if not streams:
        return {}
    records = Record.objects.filter(
        application_id__in={stream.application_id for stream in streams},
        record_id__in={str(stream.media_session_id) for stream in streams},
        state__in=ACTIVE_STATES,
    )
    return {(record.application_id, record.record_id): record for record in records}


# What stream_to_wcs reads of a stream (the rows' counters and viewer lists are large JSON, decoded for nothing).
PRESENTED_FIELDS = (
    "application_id", "node_id", "name", "media_session_id", "source_type", "remote_address", "input_tracks",
    "application__name", "application__virtual_host__name",
    "node__node_id", "node__address", "node__rtmp_port", "node__public_rtmp_port",
)  # fmt: skip


def present(streams) -> list[dict]:
    streams = list(streams)
    records = active_records(streams)  # not a query per stream: find_all is a hot path (issue #19)
    return [
        stream_to_wcs(stream, records.get((stream.application_id, str(stream.media_session_id)))) for stream in streams
    ]


def matches(stream: Stream, criteria: dict) -> bool:
    ids = criteria.get("mediaSessionId")
    if isinstance(ids, str):
        ids = [ids]
    checks = [
        ("name", lambda value: stream.name == value),
        ("appKey", lambda value: key_matches(stream.application, value)),
        ("appKeyName", lambda value: key_matches(stream.application, value)),
        ("sessionId", lambda value: session_id(stream) == value),
        ("status", lambda value: value.upper() == "PUBLISHING"),
        ("published", lambda value: value is True),
        ("nodeId", lambda value: stream.node is not None and stream.node.node_id == value),
    ]
    if ids is not None and str(stream.media_session_id) not in [str(i) for i in ids]:
        return False
    return all(key not in criteria or check(criteria[key]) for key, check in checks)


def stream_by_session(media_session_id: str) -> Stream:
    stream = next((s for s in live_streams() if str(s.media_session_id) == media_session_id), None)
    if stream is None:
        raise WcsError(404, "Stream not found")
    return stream


def stream_by_name(name: str) -> Stream:
    stream = live_streams().filter(name=name).first()
    if stream is None:
        raise WcsError(404, "Stream not found")
    return stream


# -- handlers -------------------------------------------------------------------------------------


@cached_until_changed(
    "streams.Stream", "engine.EngineNode", "hosting.Application", "hosting.VirtualHost", "recording.Record",
    "recording.RecordFile",
)  # fmt: skip
def presented_live_streams() -> RenderedOnceList:
    """``present(live_streams())``, computed again only once the rows it reads have changed (a stream's
    tracks, not its traffic counters...), and rendered to JSON once: find_all is a hot path (issue #19).
    Shared: read-only."""
    return RenderedOnceList(present(live_streams().only(*PRESENTED_FIELDS)))


def find_all(data: dict) -> list[dict]:
    return found(presented_live_streams(), "Streams not found")


def find(data: dict) -> list[dict]:
    return found(present(s for s in live_streams() if matches(s, data)), "Stream not found")


def terminate(data: dict) -> None:
    streams = [stream for stream in live_streams() if matches(stream, data)]
    if not streams:
        raise WcsError(404, "Stream not found")
    for stream in streams:
        pull = active_pull_of(stream.application, stream.name)
        if pull is not None:
            stop_pull(pull)  # a pulled stream would otherwise come back
        request_stop(stream)


def snapshot(data: dict) -> dict:
    stream = stream_by_name(data["streamName"])
    try:
        picture = take_snapshot.delay(stream.pk).get(timeout=SNAPSHOT_TIMEOUT + 5)
    except CeleryTimeout as error:
        raise WcsError(500, "Snapshot taking error: no media worker answered") from error
    except Exception as error:  # noqa: BLE001 - the worker's failure, told to the client
        raise WcsError(500, f"Snapshot taking error: {error}") from error
    if picture is None:
        raise WcsError(404, "Stream not found")
    return {"data": picture}


def start_recording(data: dict) -> None:
    stream = stream_by_session(data["mediaSessionId"])
    rotation = (data.get("config") or {}).get("rotation")
    spec = {"id": str(stream.media_session_id), "stream": {"name": stream.name}, "filePath": RECORD_FILE}
    if rotation:
        try:
            seconds = int(rotation)
        except (TypeError, ValueError):
            seconds = 0
        if not 1 <= seconds <= MAX_ROTATION_SECONDS:
            raise WcsError(
                400, f"Bad request: config.rotation must be 1..{MAX_ROTATION_SECONDS} seconds, not {rotation!r}"
            )
        spec["interval"] = seconds * 1000
    try:
        create_record(stream.application, spec)
    except RecordConflict as error:
        raise WcsError(409, "Conflict: the stream is already being recorded") from error


def stop_recording(data: dict) -> None:
    record = (
        Record.objects.filter(
            application_id__in=wcs_application_ids(), record_id=data["mediaSessionId"], state__in=ACTIVE_STATES
        )
        .order_by("-created_at")
        .first()
    )
    if record is None:
        raise WcsError(404, "Recorder not found")
    stop_record(record)


def recorders(data: dict) -> list[dict]:
    records = Record.objects.filter(application_id__in=wcs_application_ids(), state__in=ACTIVE_STATES)
    return found([recorder_to_wcs(record) for record in records], "Recorders not found")


def send_event(data: dict) -> None:
    send_to_subscribers(stream_by_name(data["streamName"]), data["payload"])


STREAM_NOT_FOUND = ((404, "Stream not found"), (500, "Internal error"))
METHODS = [
    # GET too: WCS's OpenAPI listing shows GET /rest-api/stream/find_all (every other method is POST only).
    Method("stream", "find_all", find_all, response=StreamObject(many=True), summary="Find all streams",
           errors=((404, "Streams not found"),), allows_get=True),
    Method("stream", "find", find, StreamFilter, StreamObject(many=True), "Find streams by filter", STREAM_NOT_FOUND),
    Method("stream", "terminate", terminate, StreamTerminateFilter, None,
           "Terminate the streams that match the filter", STREAM_NOT_FOUND),
    Method("stream", "snapshot", snapshot, StreamName, SnapshotAnswer, "The stream's current picture",
           ((404, "Stream not found"), (500, "Snapshot taking error"))),
    Method("stream", "startRecording", start_recording, RecorderStartup, None, "Start recording the media session",
           STREAM_NOT_FOUND),
    Method("stream", "stopRecording", stop_recording, MediaSessionId, None, "Stop recording the media session",
           ((404, "Recorder not found"),)),
    Method("stream/event", "send", send_event, EventSend, None, "Send data to all the stream's subscribers",
           STREAM_NOT_FOUND),
    Method("recorder", "startup", start_recording, RecorderStartup, None, "Start recording the media session",
           STREAM_NOT_FOUND),
    Method("recorder", "terminate", stop_recording, MediaSessionId, None, "Stop recording the media session",
           ((404, "Recorder not found"),)),
    Method("recorder", "find_all", recorders, response=RecorderObject(many=True), summary="Find session recordings",
           errors=((404, "Recorders not found"),)),
]  # fmt: skip
