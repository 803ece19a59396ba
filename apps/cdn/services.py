"""CDN services: transcoding profiles (validated as WCS documents them) and the node states WCS's
CDN shows (an engine node in GROUP_CONNECTION_ALLOWED takes no new pulls)."""

from __future__ import annotations

import re

from django.db import transaction

from apps.cdn.models import CdnProfile

VIDEO_CODECS = ("h264", "vp8")
AUDIO_CODECS = ("aac", "opus", "pcma", "pcmu", "mp3")
# Each field of a profile's video/audio part: (type, minimum, maximum).
VIDEO_FIELDS = {
    "width": (int, 16, 7680), "height": (int, 16, 4320), "fps": (int, 1, 120), "gop": (int, 1, 1000),
    "bitrate": (int, 1, 100_000), "quality": (int, 0, 51), "codec": (str, None, None), "codecImpl": (str, None, None),
    "preset": (str, None, None), "profile": (str, None, None),
}  # fmt: skip
AUDIO_FIELDS = {
    "codec": (str, None, None),
    "rate": (int, 8000, 96000),
    "bitrate": (int, 1, 1_000),
    "channels": (int, 1, 8),
}
PROFILE_NAME = re.compile(r"^[-\w.]{1,100}$")


class ProfileError(ValueError):
    """A profile that WCS would refuse (the message says why)."""


class ProfileExists(ProfileError):
    pass


class ProfileNotFound(LookupError):
    pass


def check_part(part: object, fields: dict, codecs: tuple[str, ...], kind: str) -> dict:
    if part is None:
        return {}
    if not isinstance(part, dict):
        raise ProfileError(f"profile.{kind} must be an object")
    for key, value in part.items():
        if key not in fields:
            raise ProfileError(f"profile.{kind}.{key} is not a known field ({', '.join(fields)})")
        kind_of, low, high = fields[key]
        if kind_of is int:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ProfileError(f"profile.{kind}.{key} must be a whole number from {low} to {high}")
        elif not isinstance(value, str) or not value.strip() or len(value) > 100:
            raise ProfileError(f"profile.{kind}.{key} must be a short text")
    codec = part.get("codec")
    if codec is not None and codec.lower() not in codecs:
        raise ProfileError(f"profile.{kind}.codec {codec!r} is not supported ({', '.join(codecs)})")
    return dict(part)


def check_profile(name: object, profile: object) -> tuple[str, dict, dict]:
    if not isinstance(name, str) or not PROFILE_NAME.match(name):
        raise ProfileError("name must be 1-100 letters, digits, '-', '_' or '.'")
    if not isinstance(profile, dict) or not (profile.get("audio") or profile.get("video")):
        raise ProfileError("profile must have an audio or a video part")
    unknown = set(profile) - {"audio", "video"}
    if unknown:
        raise ProfileError(f"profile.{sorted(unknown)[0]} is not a known part (audio, video)")
    audio = check_part(profile.get("audio"), AUDIO_FIELDS, AUDIO_CODECS, "audio")
    video = check_part(profile.get("video"), VIDEO_FIELDS, VIDEO_CODECS, "video")
    return name, audio, video


def add_profile(name: object, profile: object) -> CdnProfile:
    name, audio, video = check_profile(name, profile)
    with transaction.atomic():
        if CdnProfile.objects.filter(name=name).exists():
            raise ProfileExists(f"profile {name} exists")
        return CdnProfile.objects.create(name=name, audio=audio, video=video)


def modify_profile(name: object, profile: object) -> CdnProfile:
    """Change the profile ``name``: ProfileNotFound for an unknown name whatever ``profile`` is
    (WCS answers 404 before it reads the profile), ProfileError for a bad profile."""
    with transaction.atomic():
        row = CdnProfile.objects.select_for_update().filter(name=name).first() if isinstance(name, str) else None
        if row is None:
            raise ProfileNotFound(name)
        name, audio, video = check_profile(name, profile)
        row.audio, row.video = audio, video
        row.save(update_fields=["audio", "video", "updated_at"])
        return row


def remove_profile(name: str) -> None:
    deleted, _ = CdnProfile.objects.filter(name=name).delete()
    if not deleted:
        raise ProfileNotFound(name)
