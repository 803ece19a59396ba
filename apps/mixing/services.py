"""Mixers: create (the output name must be free), add and remove streams, mute and level them,
watermarks and backgrounds, parameters, stop; and what a running mixer should be now
(`mixer_settings`, read by the worker about once a second)."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction

from apps.hosting.models import Application
from apps.jobs import services as jobs
from apps.jobs.choices import ACTIVE_STATES
from apps.jobs.paths import UnsafePath, confine
from apps.mixing.choices import layout_of
from apps.mixing.models import Mixer, MixerInput
from apps.streams.models import Stream
from apps.transcoding.transcoders import output_name_taken, overlay_of
from media_engine.jobs.mixer import MixerInput as MediaInput
from media_engine.jobs.mixer import MixerSettings
from media_engine.jobs.watermark import Planes, load_picture

URI_SCHEME = "mixer://"
# mixer parameters of /mixer/startup and /mixer/set_parameter: name -> (low, high)
NUMBER_PARAMETERS = {
    "mixerVideoWidth": (16, 3840),
    "mixerVideoHeight": (16, 2160),
    "mixerVideoFps": (1, 60),
    "mixerVideoBitrateKbps": (50, 20000),
    "mixerAudioBitrateKbps": (16, 512),
}
TEXT_PARAMETERS = {"mixerVideoPreset"}
X264_PRESETS = {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium"}


class NotFound(Exception):
    """No such mixer, or no such stream (live, or in the mixer)."""


class Conflict(Exception):
    """The mixer's URI or output name is in use, or the stream is already mixed."""


def mixer_task():
    from apps.mixing.tasks import run_mixer

    return run_mixer


def active_mixers(application: Application):
    return Mixer.objects.filter(application=application, state__in=ACTIVE_STATES)


def mixer_of(application: Application, uri: str) -> Mixer:
    mixer = active_mixers(application).filter(uri=uri).first()
    if mixer is None:
        raise NotFound(f"Mixer not found: {uri}")
    return mixer


def checked_picture(name: str, what: str) -> str:
    """A picture file under the media root, as given; ValueError otherwise."""
    try:
        path = confine(name)
    except UnsafePath as error:
        raise ValueError(f"{what}: {error}") from None
    if not path.is_file():
        raise ValueError(f"{what}: {name}: no such file")
    load_picture(str(path))
    return name


def checked_parameters(values: dict) -> dict:
    parameters = {}
    for name, value in values.items():
        if name in NUMBER_PARAMETERS:
            low, high = NUMBER_PARAMETERS[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be a whole number from {low} to {high}")
            if name in ("mixerVideoWidth", "mixerVideoHeight") and value % 2:
                raise ValueError(f"{name} must be even")
        elif name in TEXT_PARAMETERS:
            if str(value).lower() not in X264_PRESETS:
                raise ValueError(f"{name} must be one of {', '.join(sorted(X264_PRESETS))}")
            value = str(value).lower()
        else:
            raise ValueError(f"unknown mixer parameter {name}")
        parameters[name] = value
    return parameters


def create_mixer(
    application: Application,
    uri: str,
    name: str,
    *,
    has_video: bool = True,
    has_audio: bool = True,
    background: str = "",
    watermark: str = "",
    layout_class: str = "",
    parameters: dict | None = None,
) -> Mixer:
    """A new mixer publishing ``name``, queued for a transcode worker. ValueError; Conflict."""
    if not uri.startswith(URI_SCHEME) or len(uri) == len(URI_SCHEME):
        raise ValueError(f"uri must be {URI_SCHEME}<name>")
    if not (has_video or has_audio):
        raise ValueError("hasVideo and hasAudio cannot both be false")
    layout = layout_of(layout_class) if layout_class else "grid"
    if background:
        checked_picture(background, "background")
    watermark_spec = {"watermark": checked_picture(watermark, "watermark")} if watermark else {}
    parameters = checked_parameters(parameters or {})
    with transaction.atomic():
        if active_mixers(application).filter(uri=uri).exists():
            raise Conflict(f"{uri} exists")
        if output_name_taken(application, name) or active_mixers(application).filter(stream_name=name).exists():
            raise Conflict(f"a stream named {name} exists")
        try:
            mixer = Mixer.objects.create(
                application=application,
                uri=uri,
                stream_name=name,
                has_video=has_video,
                has_audio=has_audio,
                layout=layout,
                background=background,
                watermark=watermark_spec,
                parameters=parameters,
            )
        except IntegrityError as error:
            raise Conflict(f"{uri} exists") from error
        jobs.dispatch(mixer, mixer_task())
    return mixer


def add_stream(mixer: Mixer, stream_name: str) -> MixerInput:
    if stream_name == mixer.stream_name:
        raise ValueError("a mixer cannot mix its own output")
    if not Stream.objects.live().filter(application_id=mixer.application_id, name=stream_name).exists():
        raise NotFound(f"Stream not found: {stream_name}")
    try:
        with transaction.atomic():
            return MixerInput.objects.create(mixer=mixer, stream_name=stream_name)
    except IntegrityError as error:
        raise Conflict(f"{stream_name} is already in {mixer.uri}") from error


def remove_stream(mixer: Mixer, stream_name: str) -> None:
    removed, _ = mixer.inputs.filter(stream_name=stream_name).delete()
    if not removed:
        raise NotFound(f"Stream not found: {stream_name}")


def stop_mixer(mixer: Mixer) -> Mixer:
    with transaction.atomic():
        mixer = Mixer.objects.select_for_update().get(pk=mixer.pk)  # the worker may be marking it
        mixer.request_stop()
    return mixer


def inputs_matching(mixer: Mixer, streams) -> list[MixerInput]:
    """WCS's ``streams``: a list of names, or one regular expression (``^stream.*``)."""
    inputs = list(mixer.inputs.all())
    if isinstance(streams, list):
        return [entry for entry in inputs if entry.stream_name in streams]
    try:
        pattern = re.compile(str(streams))
    except re.error as error:
        raise ValueError(f"streams: not a regular expression ({error})") from None
    return [entry for entry in inputs if pattern.search(entry.stream_name)]


def set_audio_video(mixer: Mixer, streams, audio_level: int | None, video_muted: bool | None) -> int:
    """Level (0-100 %) and video mute of the matching inputs; NotFound if none matches."""
    matching = inputs_matching(mixer, streams)
    if not matching:
        raise NotFound("Not found: no such stream in the mixer")
    changes = {}
    if audio_level is not None:
        changes["audio_level"] = audio_level
    if video_muted is not None:
        changes["video_muted"] = video_muted
    if changes:
        MixerInput.objects.filter(pk__in=[entry.pk for entry in matching]).update(**changes)
    return len(matching)


def set_body_watermark(mixer: Mixer, spec: dict) -> None:
    Mixer.objects.filter(pk=mixer.pk).update(watermark=spec)


def set_stream_watermark(mixer: Mixer, media_session_id: str, spec: dict) -> None:
    """The input whose live stream has ``media_session_id`` gets the watermark; NotFound otherwise."""
    names = list(
        Stream.objects.live()
        .filter(application_id=mixer.application_id, media_session_id=media_session_id)
        .values_list("name", flat=True)
    )
    updated = mixer.inputs.filter(stream_name__in=names).update(watermark=spec) if names else 0
    if not updated:
        raise NotFound(f"Not found: no stream of the mixer has mediaSessionId {media_session_id}")


def set_parameters(mixer: Mixer, values: dict) -> None:
    """Layout and background apply at once; size, rate and bitrates when the mixer starts next."""
    changes: dict = {}
    values = dict(values)
    if "mixerLayoutClass" in values:
        changes["layout"] = layout_of(str(values.pop("mixerLayoutClass")))
    if "background" in values:
        background = str(values.pop("background") or "")
        changes["background"] = checked_picture(background, "background") if background else ""
    if values:
        changes["parameters"] = {**mixer.parameters, **checked_parameters(values)}
    if not changes:
        raise ValueError("give a mixer parameter to change")
    Mixer.objects.filter(pk=mixer.pk).update(**changes)


# -- what the worker runs ------------------------------------------------------------------------


class PictureCache:
    """Backgrounds and watermarks decoded once per (file, placement, size), not every second."""

    def __init__(self) -> None:
        self._items: dict[str, object] = {}

    def get(self, key: str, make):
        if key not in self._items:
            try:
                self._items[key] = make()
            except (ValueError, OSError, UnsafePath):
                self._items[key] = None  # a file that went away: drawn without it
        return self._items[key]


def mixer_settings(mixer: Mixer, cache: PictureCache) -> MixerSettings:
    """The mixer row and its inputs as the media mixer's settings, with the inputs' RTMP URLs
    (None for a stream that is not live now)."""
    mixer.refresh_from_db()
    width, height = mixer.parameter("mixerVideoWidth"), mixer.parameter("mixerVideoHeight")
    live = {
        row.name: row
        for row in Stream.objects.live()
        .select_related("node")
        .filter(application_id=mixer.application_id, name__in=mixer.inputs.values_list("stream_name", flat=True))
    }
    app = mixer.application.name
    inputs = []
    for entry in mixer.inputs.all():
        stream = live.get(entry.stream_name)
        key = repr(sorted(entry.watermark.items()))
        inputs.append(
            MediaInput(
                name=entry.stream_name,
                url=stream.node.rtmp_url(app, stream.name) if stream is not None and stream.node else None,
                audio_level=entry.audio_level / 100,
                video_muted=entry.video_muted,
                watermark=cache.get("w" + key, lambda e=entry: overlay_of(e.watermark)),
                watermark_key=key,
            )
        )
    background = None
    if mixer.background:
        path = mixer.background
        background = cache.get(
            f"b{path}:{width}x{height}",
            lambda: Planes.from_frame(load_picture(str(confine(path))), width, height),
        )
    body_key = repr(sorted(mixer.watermark.items()))
    bitrate = mixer.parameter("mixerVideoBitrateKbps")
    audio_bitrate = mixer.parameter("mixerAudioBitrateKbps")
    return MixerSettings(
        width=width,
        height=height,
        fps=float(mixer.parameter("mixerVideoFps")),
        video_bitrate=bitrate * 1000 if bitrate else 2_000_000,
        audio_bitrate=audio_bitrate * 1000 if audio_bitrate else 128_000,
        preset=mixer.parameter("mixerVideoPreset") or "veryfast",
        has_video=mixer.has_video,
        has_audio=mixer.has_audio,
        layout=mixer.layout,
        background=background,
        watermark=cache.get("m" + body_key, lambda: overlay_of(mixer.watermark)),
        inputs=tuple(inputs),
    )
