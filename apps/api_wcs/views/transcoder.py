"""WCS /transcoder/* and /transcoder2/*: a live stream transcoded into another stream with the
``encoder`` parameters (apps.transcoding.transcoders), found, stopped, and watermarked while it runs."""

from __future__ import annotations

from rest_framework import serializers

from apps.api_wcs.errors import WcsError
from apps.api_wcs.presenters import AGENT_STATUS
from apps.api_wcs.views.base import Method, found, wcs_application
from apps.transcoding.models import WcsTranscoder
from apps.transcoding.transcoders import (
    Conflict,
    StreamNotFound,
    active_transcoders,
    create_wcs_transcoder,
    stop_wcs_transcoder,
    watermark_spec,
)


class TranscoderStartup(serializers.Serializer):
    uri = serializers.CharField(max_length=255, help_text="transcoder://name (transcoder2://name for /transcoder2)")
    remoteStreamName = serializers.CharField(max_length=255)
    localStreamName = serializers.CharField(max_length=255)
    encoder = serializers.DictField(
        required=False,
        default=dict,
        help_text="width, height, fps, keyFrameInterval, bitrate (kbps), type (H264), watermark; preset (x264)",
    )


class TranscoderFilter(serializers.Serializer):
    uri = serializers.CharField(required=False)
    remoteStreamName = serializers.CharField(required=False)
    localStreamName = serializers.CharField(required=False)
    status = serializers.CharField(required=False)


class Watermark(serializers.Serializer):
    uri = serializers.CharField(max_length=255)
    watermark = serializers.CharField(max_length=1000, help_text="A PNG under the media root")
    x = serializers.IntegerField(required=False, min_value=0, max_value=10_000)
    y = serializers.IntegerField(required=False, min_value=0, max_value=10_000)
    marginTop = serializers.IntegerField(required=False, min_value=0, max_value=10_000)
    marginLeft = serializers.IntegerField(required=False, min_value=0, max_value=10_000)
    marginBottom = serializers.IntegerField(required=False, min_value=0, max_value=10_000)
    marginRight = serializers.IntegerField(required=False, min_value=0, max_value=10_000)


class TranscoderObject(serializers.Serializer):
    localMediaSessionId = serializers.CharField()
    localStreamName = serializers.CharField()
    remoteStreamName = serializers.CharField()
    uri = serializers.CharField()
    status = serializers.CharField()
    hasAudio = serializers.BooleanField()
    hasVideo = serializers.BooleanField()
    record = serializers.BooleanField()
    encoder = serializers.DictField()


def transcoder_to_wcs(job: WcsTranscoder) -> dict:
    return {
        "localMediaSessionId": str(job.media_session_id),
        "localStreamName": job.local_stream_name,
        "remoteStreamName": job.stream_name,
        "uri": job.uri,
        "status": AGENT_STATUS[job.state],
        "hasAudio": True,
        "hasVideo": True,
        "record": False,
        "encoder": {**job.encoder, **({"watermark": job.watermark["watermark"]} if job.watermark else {})},
    }


def select(version: int, data: dict) -> list[WcsTranscoder]:
    result = []
    for job in active_transcoders(wcs_application(), version).order_by("created_at"):
        if data.get("uri") and job.uri != data["uri"]:
            continue
        if data.get("remoteStreamName") and job.stream_name != data["remoteStreamName"]:
            continue
        if data.get("localStreamName") and job.local_stream_name != data["localStreamName"]:
            continue
        if data.get("status") and AGENT_STATUS[job.state] != data["status"].upper():
            continue
        result.append(job)
    return result


def startup(version: int):
    def start(data: dict) -> None:
        try:
            create_wcs_transcoder(
                wcs_application(),
                version,
                data["uri"],
                data["remoteStreamName"],
                data["localStreamName"],
                data["encoder"],
            )
        except StreamNotFound as error:
            raise WcsError(404, f"Stream not found: {error}") from error
        except Conflict as error:
            raise WcsError(409, f"Conflict: {error}") from error
        except ValueError as error:
            raise WcsError(400, f"Bad request: {error}") from error

    return start


def finder(version: int):
    return lambda data: found([transcoder_to_wcs(job) for job in select(version, data)], "Transcoders not found")


def terminator(version: int):
    def terminate(data: dict) -> None:
        jobs = select(version, data)
        if not jobs or not any(data.get(key) for key in TranscoderFilter().fields):
            raise WcsError(404, "Transcoder not found")
        for job in jobs:
            stop_wcs_transcoder(job)

    return terminate


def watermarker(version: int):
    def set_watermark(data: dict) -> None:
        jobs = select(version, {"uri": data["uri"]})
        if not jobs:
            raise WcsError(404, "Not found")
        try:
            spec = watermark_spec(data)
        except ValueError as error:
            raise WcsError(400, f"Bad request: {error}") from error
        jobs[0].set_watermark(spec)

    return set_watermark


METHODS = []
for group, version in (("transcoder", 1), ("transcoder2", 2)):
    METHODS += [
        Method(group, "startup", startup(version), TranscoderStartup, None,
               "Create a transcoder of a stream with the encoder's parameters",
               ((400, "Bad request"), (404, "Stream not found"), (409, "Conflict"), (500, "Internal error"))),
        Method(group, "find", finder(version), TranscoderFilter, TranscoderObject(many=True),
               "Find transcoders by filter", ((404, "Transcoders not found"),)),
        Method(group, "find_all", finder(version), response=TranscoderObject(many=True),
               summary="Find all transcoders", errors=((404, "Transcoders not found"),)),
        Method(group, "terminate", terminator(version), TranscoderFilter, None,
               "Stop transcoders (and their output streams) by filter", ((404, "Transcoder not found"),)),
        Method(group, "set_watermark", watermarker(version), Watermark, None,
               "Put a watermark (a PNG under the media root) on the transcoder's output",
               ((400, "Bad request"), (404, "Not found"))),
    ]  # fmt: skip
