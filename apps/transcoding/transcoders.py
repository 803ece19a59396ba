"""Transcoders started on request (the WcsTranscoder model, served by WCS's /transcoder/* and
/transcoder2/*): one live stream encoded into another with the stored ``encoder`` object, with a
watermark from the media root; create, find, stop, watermark. Domain services: the worker, the admin
and the mixer use them, and apps.api_wcs calls them (never the other way round)."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.hosting.models import Application
from apps.jobs import services as jobs
from apps.jobs.choices import ACTIVE_STATES
from apps.jobs.paths import UnsafePath, confine
from apps.streams.models import Stream
from apps.transcoding.models import WcsTranscoder
from media_engine.jobs.transcode import VideoEncoding
from media_engine.jobs.watermark import Overlay, Placement, load_picture

URI_SCHEMES = {1: "transcoder://", 2: "transcoder2://"}
# WCS's encoder "type" names of H.264 (the one RTMP carries back into the engine).
H264_TYPES = {"H264", "OPENH264", "AVC"}
DEFAULT_PRESET = "veryfast"
PLACEMENT_KEYS = {
    "x": "x",
    "y": "y",
    "marginTop": "margin_top",
    "marginLeft": "margin_left",
    "marginBottom": "margin_bottom",
    "marginRight": "margin_right",
}


class StreamNotFound(Exception):
    """The stream to transcode is not live."""


class Conflict(Exception):
    """The transcoder's URI or output stream name is in use."""


def wcs_transcoder_task():
    from apps.transcoding.tasks import transcode_for_wcs

    return transcode_for_wcs


def video_encoding(encoder: dict) -> VideoEncoding:
    """WCS's encoder object as our encode; ValueError (a message for the client) if it cannot be made.

    ``width``/``height`` (0 or missing: the source's, keeping proportions), ``fps``,
    ``keyFrameInterval`` (frames), ``bitrate`` (kbps), ``type`` (H.264 only: it is published over
    RTMP); StreamHub adds ``preset`` (an x264 preset).
    """
    if not isinstance(encoder, dict):
        raise ValueError("encoder must be an object")
    codec = str(encoder.get("type") or "H264").upper()
    if codec not in H264_TYPES:
        raise ValueError(f"encoder type {codec} is not supported (use H264)")
    try:
        numbers = {key: _positive(encoder, key) for key in ("width", "height", "fps", "keyFrameInterval", "bitrate")}
        return VideoEncoding(
            codec="h264",
            bitrate=int(numbers["bitrate"] * 1000) if numbers["bitrate"] else 1_000_000,
            width=int(numbers["width"]) if numbers["width"] else None,
            height=int(numbers["height"]) if numbers["height"] else None,
            framerate=numbers["fps"] or None,
            preset=str(encoder.get("preset") or DEFAULT_PRESET),
            keyframe_interval=int(numbers["keyFrameInterval"]) if numbers["keyFrameInterval"] else None,
        )
    except (TypeError, ValueError) as error:
        raise ValueError(str(error)) from None


def _positive(encoder: dict, key: str) -> float:
    value = encoder.get(key)
    if value in (None, ""):
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"encoder {key} must be a number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"encoder {key} must be a number") from None
    if number < 0 or number > 100_000:
        raise ValueError(f"encoder {key} must be between 0 and 100000")
    return number


def watermark_spec(data: dict) -> dict:
    """The watermark part of a request (``watermark`` file and placement), checked: the file is a
    picture under the media root. ValueError otherwise."""
    name = data.get("watermark")
    if not name or not isinstance(name, str):
        raise ValueError("watermark: give a picture file under the media root")
    try:
        path = confine(name)
    except UnsafePath as error:
        raise ValueError(f"watermark: {error}") from None
    if not path.is_file():
        raise ValueError(f"watermark: {name}: no such file")
    load_picture(str(path))
    spec = {"watermark": name}
    for key in PLACEMENT_KEYS:
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
            raise ValueError(f"{key} must be a whole number of pixels (0-10000)")
        spec[key] = value
    return spec


def overlay_of(spec: dict) -> Overlay | None:
    """The overlay a stored watermark spec stands for (None: no watermark)."""
    if not spec or not spec.get("watermark"):
        return None
    placement = Placement(**{field: spec[key] for key, field in PLACEMENT_KEYS.items() if key in spec})
    return Overlay.from_file(str(confine(spec["watermark"])), placement)


def active_transcoders(application: Application, version: int):
    return WcsTranscoder.objects.filter(application=application, api_version=version, state__in=ACTIVE_STATES)


def output_name_taken(application: Application, name: str) -> bool:
    """A live stream or an active WCS transcoder already has this output name."""
    if Stream.objects.live().filter(application=application, name=name).exists():
        return True
    return WcsTranscoder.objects.filter(
        application=application, local_stream_name=name, state__in=ACTIVE_STATES
    ).exists()


def create_wcs_transcoder(
    application: Application, version: int, uri: str, remote: str, local: str, encoder: dict
) -> WcsTranscoder:
    """A new transcoder of the live stream ``remote`` into ``local``, queued for a transcode worker.
    ValueError for a bad URI, encoder or watermark; StreamNotFound; Conflict."""
    scheme = URI_SCHEMES[version]
    if not uri.startswith(scheme) or len(uri) == len(scheme):
        raise ValueError(f"uri must be {scheme}<name>")
    if remote == local:
        raise ValueError("localStreamName must differ from remoteStreamName")
    video_encoding(encoder)
    watermark = watermark_spec(encoder) if encoder.get("watermark") else {}
    with transaction.atomic():
        if not Stream.objects.live().filter(application=application, name=remote).exists():
            raise StreamNotFound(remote)
        if WcsTranscoder.objects.filter(uri=uri, state__in=ACTIVE_STATES).exists():
            raise Conflict(f"{uri} exists")
        if output_name_taken(application, local):
            raise Conflict(f"a stream named {local} exists")
        try:
            job = WcsTranscoder.objects.create(
                application=application,
                api_version=version,
                uri=uri,
                stream_name=remote,
                local_stream_name=local,
                encoder=encoder,
                watermark=watermark,
            )
        except IntegrityError as error:
            raise Conflict(f"{uri} exists") from error
        jobs.dispatch(job, wcs_transcoder_task())
    return job


def stop_wcs_transcoder(job: WcsTranscoder) -> WcsTranscoder:
    with transaction.atomic():
        job = WcsTranscoder.objects.select_for_update().get(pk=job.pk)  # the worker may be marking it
        job.request_stop()
    return job


def start_reserved_wcs_transcoders(stream: Stream) -> None:
    jobs.start_reserved(WcsTranscoder, wcs_transcoder_task(), stream)
