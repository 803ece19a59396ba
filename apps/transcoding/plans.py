"""What an output profile asks of one live stream: its renditions (each an output stream of its own),
the variants of its playlists, and its thumbnails, worked out from OME's ``encodes``/``playlists``.

Naming: a rendition is published into the engine as ``{outputStreamName}_{rendition}``, where
``rendition`` is the playlist rendition's name (or, without playlists, the video encode's name).
A rendition that passes every track through (``bypass``) is the input stream itself: no stream
is made for it, and playlists point to the input.

Only what RTMP carries can be published back into the engine: H.264 video and AAC audio. Other
codecs of a profile (OME's default ``opus`` for WebRTC, vp8, h265) are left out here, and say so
in ``skipped``. A profile whose renditions all pass through and that has no images (OME's
default and ``bypass_profile``) needs no transcode at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from apps.hosting.choices import ORIGIN_STREAM_NAME_MACRO
from apps.hosting.models import OutputProfile
from media_engine.jobs.thumbnail import IMAGE_FORMATS

PUBLISHABLE_VIDEO = {"h264"}
PUBLISHABLE_AUDIO = {"aac"}
DEFAULT_IMAGE_FRAMERATE = 1.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
BYPASS = "bypass"


def safe_name(name: str) -> str:
    """A rendition name fit for a stream name (a URL path segment, an RTMP stream key)."""
    cleaned = _UNSAFE.sub("_", name.strip())
    return cleaned if cleaned.strip(".") else "rendition"


def origin_of(output_stream_template: str, output_stream: str) -> str | None:
    """The input stream whose output stream is ``output_stream`` under ``outputStreamName``, or None."""
    if ORIGIN_STREAM_NAME_MACRO not in output_stream_template:
        return None
    prefix, _, suffix = output_stream_template.partition(ORIGIN_STREAM_NAME_MACRO)
    if len(output_stream) <= len(prefix) + len(suffix):
        return None
    if not (output_stream.startswith(prefix) and output_stream.endswith(suffix)):
        return None
    return output_stream[len(prefix) : len(output_stream) - len(suffix)]


@dataclass(frozen=True)
class PlannedRendition:
    """One rendition: its video and audio encode (an OME encode dict), "bypass", or None (no track)."""

    name: str
    stream_name: str  # where it plays: its own output stream, or the input for a pure pass-through
    video: dict | str | None
    audio: dict | str | None

    @property
    def needs_stream(self) -> bool:
        """Something is encoded: the rendition is a stream of its own, made by the transcode job."""
        return isinstance(self.video, dict) or isinstance(self.audio, dict)

    @property
    def bandwidth(self) -> int | None:
        """The configured bits per second (video + audio), None if a passed-through track's must be measured."""
        total = 0
        for encode in (self.video, self.audio):
            if encode == BYPASS:
                return None
            if isinstance(encode, dict):
                total += int(encode.get("bitrate") or 0)
        return total or None

    def as_dict(self) -> dict:
        return {"name": self.name, "stream": self.stream_name, "video": self.video, "audio": self.audio}


@dataclass(frozen=True)
class PlannedImage:
    codec: str  # jpeg | png
    width: int | None
    height: int | None
    framerate: float

    @property
    def extension(self) -> str:
        return IMAGE_FORMATS[self.codec]


@dataclass
class ProfilePlan:
    origin: str
    output_stream: str
    renditions: list[PlannedRendition] = field(default_factory=list)
    playlists: dict[str, list[PlannedRendition]] = field(default_factory=dict)  # fileName -> variants
    images: list[PlannedImage] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why parts of the profile are not produced

    @property
    def needs_job(self) -> bool:
        return bool(self.images) or any(rendition.needs_stream for rendition in self.renditions)

    @property
    def rendition_streams(self) -> list[str]:
        return [rendition.stream_name for rendition in self.renditions if rendition.needs_stream]


def _is_bypass(encode: dict) -> bool:
    return bool(encode.get("bypass"))


def _track(encode: dict | None, publishable: set[str], kind: str, skipped: list[str]) -> dict | str | None:
    if encode is None:
        return None
    if _is_bypass(encode):
        return BYPASS
    codec = str(encode.get("codec", "")).lower()
    if codec not in publishable:
        skipped.append(f"{kind} encode {encode.get('name') or codec!r}: {codec} cannot be published over RTMP")
        return None
    return dict(encode)


def _default_audio(audios: list[dict]) -> dict | None:
    """The audio of renditions made without playlists: the first AAC or pass-through audio encode."""
    for encode in audios:
        if _is_bypass(encode) or str(encode.get("codec", "")).lower() in PUBLISHABLE_AUDIO:
            return encode
    return None


def plan_profile(profile: OutputProfile, origin: str) -> ProfilePlan:
    """What ``profile`` makes of the input stream ``origin``."""
    encodes = profile.encodes or {}
    videos = [encode for encode in encodes.get("videos") or [] if isinstance(encode, dict)]
    audios = [encode for encode in encodes.get("audios") or [] if isinstance(encode, dict)]
    output_stream = profile.output_stream_name_for(origin)
    plan = ProfilePlan(origin=origin, output_stream=output_stream)

    def rendition(name: str, video: dict | None, audio: dict | None) -> PlannedRendition | None:
        video_track = _track(video, PUBLISHABLE_VIDEO, "video", plan.skipped)
        audio_track = _track(audio, PUBLISHABLE_AUDIO, "audio", plan.skipped)
        if video is not None and video_track is None:
            plan.skipped.append(f"rendition {name!r} left out")
            return None
        if video_track is None and audio_track is None:
            return None
        encoded = isinstance(video_track, dict) or isinstance(audio_track, dict)
        stream_name = f"{output_stream}_{safe_name(name)}" if encoded else origin
        return PlannedRendition(name, stream_name, video_track, audio_track)

    by_name: dict[str, PlannedRendition] = {}
    playlists = [p for p in profile.playlists or [] if isinstance(p, dict)]
    if playlists:
        video_by_name = {encode.get("name"): encode for encode in videos if encode.get("name")}
        audio_by_name = {encode.get("name"): encode for encode in audios if encode.get("name")}
        for playlist in playlists:
            variants: list[PlannedRendition] = []
            for item in playlist.get("renditions") or []:
                name = str(item.get("name") or "")
                video_name, audio_name = item.get("video"), item.get("audio")
                missing = [
                    n for n, known in ((video_name, video_by_name), (audio_name, audio_by_name)) if n and n not in known
                ]
                if not name or missing:
                    plan.skipped.append(
                        f"playlist {playlist.get('fileName')!r} rendition {name!r}: unknown encode {missing}"
                    )
                    continue
                planned = by_name.get(name) or rendition(
                    name, video_by_name.get(video_name), audio_by_name.get(audio_name)
                )
                if planned is not None:
                    by_name[name] = planned
                    variants.append(planned)
            if playlist.get("fileName"):
                plan.playlists[str(playlist["fileName"])] = variants
    else:
        audio = _default_audio(audios)
        for index, video in enumerate(videos):
            if _is_bypass(video):
                continue
            planned = rendition(str(video.get("name") or f"video{index}"), video, audio)
            if planned is not None and planned.name not in by_name:
                by_name[planned.name] = planned
    plan.renditions = list(by_name.values())
    for image in encodes.get("images") or []:
        codec = str(image.get("codec", "")).lower() if isinstance(image, dict) else ""
        if codec not in IMAGE_FORMATS:
            plan.skipped.append(f"image encode {codec or image!r}: only jpeg and png are made")
            continue
        plan.images.append(
            PlannedImage(
                codec=codec,
                width=_positive(image.get("width")),
                height=_positive(image.get("height")),
                framerate=float(image.get("framerate") or DEFAULT_IMAGE_FRAMERATE),
            )
        )
    return plan


def _positive(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


# -- bypassIfMatch ---------------------------------------------------------------------------------

_VIDEO_PROPERTIES = {"codec": "codec", "width": "width", "height": "height", "framerate": "framerate"}
_AUDIO_PROPERTIES = {"codec": "codec", "samplerate": "samplerate", "channel": "channels"}


def bypass_matches(encode: dict, track: dict | None) -> bool:
    """OME's ``bypassIfMatch``: every listed property of the input ``track`` (eq, lte or gte) matches
    the encode's own, so the track passes through instead of being encoded."""
    conditions = encode.get("bypassIfMatch")
    if not isinstance(conditions, dict) or not conditions or track is None:
        return False
    names = _VIDEO_PROPERTIES if track.get("kind") == "video" else _AUDIO_PROPERTIES
    for key, operator in conditions.items():
        if key not in names or key not in encode:
            return False
        wanted, actual = encode[key], track.get(names[key])
        if key == "codec":
            wanted, actual = str(wanted).lower(), str(actual or "").lower()
            if str(operator).lower() != "eq" or wanted != actual:
                return False
            continue
        try:
            wanted, actual = float(wanted), float(actual)
        except (TypeError, ValueError):
            return False
        operator = str(operator).lower()
        if not {"eq": actual == wanted, "lte": actual <= wanted, "gte": actual >= wanted}.get(operator, False):
            return False
    return True
