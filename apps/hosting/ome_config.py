"""The OME JSON shape of the hosting configuration: serializers that validate vhosts, applications
and output profiles as OME's API takes them, shared by the OME API, import/export and the admin.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.hosting.choices import (
    DEFAULT_OUTPUT_PROFILE_ENCODES,
    DEFAULT_OUTPUT_PROFILE_NAME,
    DEFAULT_PROVIDERS,
    DEFAULT_PUBLISHERS,
    MAX_AUDIO_BITRATE,
    MAX_VIDEO_BITRATE,
    ORIGIN_STREAM_NAME_MACRO,
    ApplicationType,
)
from apps.hosting.models import check_output_stream_name, name_validator

VIDEO_CODECS = ["h264", "h265", "vp8"]
AUDIO_CODECS = ["aac", "opus"]
IMAGE_CODECS = ["jpeg", "png", "webp"]
_BITRATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string", "example": "2.5M"}]})
class BitrateField(serializers.Field):
    """Bits per second, as a number or as OME's "2500000", "2500K" or "2.5M"."""

    default_error_messages = {
        "invalid": "A bitrate is a positive number of bits per second, e.g. 2500000 or '2.5M'.",
        "too_high": "A bitrate is at most {maximum} bits per second.",
    }

    def __init__(self, *, maximum: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.maximum = maximum

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, int | float):
            value = data
        else:
            match = _BITRATE.match(str(data))
            if not match:
                self.fail("invalid")
            value = float(match.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[match.group(2).lower()]
        if not math.isfinite(value) or value <= 0:
            self.fail("invalid")
        if value > self.maximum:
            self.fail("too_high", maximum=self.maximum)
        return int(value)

    def to_representation(self, value):
        return value


class OmeSerializer(serializers.Serializer):
    """Drops keys the client left out instead of rendering them as null, as OME does."""

    def to_representation(self, instance):
        data = super().to_representation(instance)
        return {key: value for key, value in data.items() if value is not None}


class VideoEncodeSerializer(OmeSerializer):
    name = serializers.CharField(required=False, max_length=100)
    bypass = serializers.BooleanField(required=False)
    codec = serializers.ChoiceField(VIDEO_CODECS, required=False)
    bitrate = BitrateField(required=False, maximum=MAX_VIDEO_BITRATE)
    width = serializers.IntegerField(required=False, min_value=-1, max_value=7680)
    height = serializers.IntegerField(required=False, min_value=-1, max_value=4320)
    framerate = serializers.FloatField(required=False, min_value=0, max_value=240)
    keyFrameInterval = serializers.IntegerField(required=False, min_value=0, max_value=10_000)
    bFrames = serializers.IntegerField(required=False, min_value=0, max_value=16)
    preset = serializers.CharField(required=False, max_length=50)
    profile = serializers.CharField(required=False, max_length=50)
    threadCount = serializers.IntegerField(required=False, min_value=0, max_value=256)
    skipFrames = serializers.IntegerField(required=False, min_value=-1, max_value=1000)
    modules = serializers.CharField(required=False, max_length=200)
    bypassIfMatch = serializers.DictField(required=False)

    def validate(self, attrs):
        if not attrs.get("bypass") and "codec" not in attrs:
            raise serializers.ValidationError({"codec": "A video encode needs a codec unless bypass is true."})
        return attrs


class AudioEncodeSerializer(OmeSerializer):
    name = serializers.CharField(required=False, max_length=100)
    bypass = serializers.BooleanField(required=False)
    codec = serializers.ChoiceField(AUDIO_CODECS, required=False)
    bitrate = BitrateField(required=False, maximum=MAX_AUDIO_BITRATE)
    samplerate = serializers.IntegerField(required=False, min_value=8000, max_value=192000)
    channel = serializers.IntegerField(required=False, min_value=1, max_value=8)
    bypassIfMatch = serializers.DictField(required=False)

    def validate(self, attrs):
        if not attrs.get("bypass") and "codec" not in attrs:
            raise serializers.ValidationError({"codec": "An audio encode needs a codec unless bypass is true."})
        return attrs


class ImageEncodeSerializer(OmeSerializer):
    name = serializers.CharField(required=False, max_length=100)
    codec = serializers.ChoiceField(IMAGE_CODECS)
    width = serializers.IntegerField(required=False, min_value=-1, max_value=7680)
    height = serializers.IntegerField(required=False, min_value=-1, max_value=4320)
    framerate = serializers.FloatField(required=False, min_value=0, max_value=60)


class EncodesSerializer(OmeSerializer):
    videos = VideoEncodeSerializer(many=True, required=False)
    audios = AudioEncodeSerializer(many=True, required=False)
    images = ImageEncodeSerializer(many=True, required=False)

    def validate(self, attrs):
        if not (attrs.get("videos") or attrs.get("audios") or attrs.get("images")):
            raise serializers.ValidationError("encodes must have videos or audios with at least one item.")
        # OME answers with both lists present, empty or not.
        attrs.setdefault("videos", [])
        attrs.setdefault("audios", [])
        return attrs


class RenditionSerializer(OmeSerializer):
    name = serializers.CharField(max_length=100)
    video = serializers.CharField(required=False, max_length=100)
    audio = serializers.CharField(required=False, max_length=100)


class PlaylistSerializer(OmeSerializer):
    name = serializers.CharField(max_length=100)
    fileName = serializers.CharField(max_length=100)
    options = serializers.DictField(required=False)
    renditions = RenditionSerializer(many=True)


class OutputProfileConfigSerializer(OmeSerializer):
    name = serializers.CharField(max_length=100, validators=[name_validator])
    outputStreamName = serializers.CharField(max_length=200, validators=[check_output_stream_name])
    encodes = EncodesSerializer()
    playlists = PlaylistSerializer(many=True, required=False)


class OutputProfilesSerializer(OmeSerializer):
    outputProfile = OutputProfileConfigSerializer(many=True)

    def validate_outputProfile(self, profiles):
        names = [profile["name"] for profile in profiles]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise serializers.ValidationError(f"Duplicate output profile names: {', '.join(duplicates)}")
        return profiles


# -- providers and publishers: OME's settings with their types and ranges ------------------------


@dataclass(frozen=True)
class Setting:
    """One provider/publisher setting: its JSON type (int, float, bool, str, list of str) and range."""

    kind: type
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""

    def check(self, value: object) -> str | None:
        """Why ``value`` is not acceptable (None if it is)."""
        if self.kind is bool:
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind is str:
            return None if isinstance(value, str) and len(value) <= 1000 else "must be a string"
        if self.kind is list:
            ok = isinstance(value, list) and len(value) <= 100 and all(isinstance(item, str) for item in value)
            return None if ok else "must be an array of strings"
        number = "an integer" if self.kind is int else "a number"
        what = f"must be {number} from {_plain(self.minimum)} to {_plain(self.maximum)}{self.unit}"
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return what
        if self.kind is int and value != int(value):
            return what
        return None if self.minimum <= value <= self.maximum else what


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


_CROSS_DOMAINS = Setting(list)
_TIMEOUT_MS = Setting(int, 0, 3_600_000, " ms")
# The settings StreamHub's engine reads, with OME's meaning (seconds, counts); other keys are kept as given.
PUBLISHER_SETTINGS: dict[str, dict[str, Setting]] = {
    "hls": {
        "segmentDuration": Setting(float, 1, 60, " s"),
        "segmentCount": Setting(int, 1, 100),
        "crossDomains": _CROSS_DOMAINS,
    },
    "llhls": {
        "chunkDuration": Setting(float, 0.1, 10, " s"),
        "segmentDuration": Setting(float, 1, 60, " s"),
        "segmentCount": Setting(int, 1, 100),
        "crossDomains": _CROSS_DOMAINS,
    },
    "webrtc": {
        "timeout": _TIMEOUT_MS,
        "rtx": Setting(bool),
        "ulpfec": Setting(bool),
        "jitterBuffer": Setting(bool),
        "crossDomains": _CROSS_DOMAINS,
    },
    "thumbnail": {"crossDomains": _CROSS_DOMAINS},
}
PROVIDER_SETTINGS: dict[str, dict[str, Setting]] = {
    "webrtc": {"timeout": _TIMEOUT_MS, "crossDomains": _CROSS_DOMAINS},
}


def check_modules(kind: str, config: object, known: dict[str, dict[str, Setting]]) -> dict:
    """``config`` (an application's providers or publishers) checked against OME's types and ranges;
    ValidationError naming every bad setting."""
    if not isinstance(config, dict):
        raise serializers.ValidationError(f"{kind} must be an object of objects")
    errors: dict[str, str] = {}
    for name, settings in config.items():
        if not isinstance(settings, dict):
            errors[name] = "must be an object of settings"
            continue
        for key, rule in known.get(name, {}).items():
            if key in settings and (reason := rule.check(settings[key])) is not None:
                errors[f"{name}.{key}"] = reason
    llhls = config.get("llhls") if kind == "publishers" else None
    if isinstance(llhls, dict) and not errors:
        chunk, segment = llhls.get("chunkDuration", 0.2), llhls.get("segmentDuration", 6)
        if chunk > segment:
            errors["llhls.chunkDuration"] = "must not be longer than llhls.segmentDuration"
    if errors:
        raise serializers.ValidationError(errors)
    return config


class ApplicationConfigSerializer(OmeSerializer):
    name = serializers.CharField(max_length=100, validators=[name_validator])
    type = serializers.ChoiceField(ApplicationType.values)
    dynamic = serializers.BooleanField(required=False, read_only=True)
    outputProfiles = OutputProfilesSerializer(required=False)
    providers = serializers.DictField(required=False, child=serializers.JSONField())
    publishers = serializers.DictField(required=False, child=serializers.JSONField())

    def validate_providers(self, providers: dict) -> dict:
        return check_modules("providers", providers, PROVIDER_SETTINGS)

    def validate_publishers(self, publishers: dict) -> dict:
        return check_modules("publishers", publishers, PUBLISHER_SETTINGS)

    def validate(self, attrs):
        # OME's defaults for what a create request leaves out (003_*.txt, Create Application).
        attrs.setdefault("providers", dict(DEFAULT_PROVIDERS))
        attrs.setdefault("publishers", dict(DEFAULT_PUBLISHERS))
        attrs.setdefault("outputProfiles", {"outputProfile": [default_output_profile()]})
        return attrs


def default_output_profile(name: str = DEFAULT_OUTPUT_PROFILE_NAME) -> dict:
    return {"name": name, "outputStreamName": ORIGIN_STREAM_NAME_MACRO, "encodes": DEFAULT_OUTPUT_PROFILE_ENCODES}


class TlsSerializer(OmeSerializer):
    certPath = serializers.CharField(max_length=500, allow_blank=True, required=False)
    keyPath = serializers.CharField(max_length=500, allow_blank=True, required=False)
    chainCertPath = serializers.CharField(max_length=500, allow_blank=True, required=False)


class HostSerializer(OmeSerializer):
    names = serializers.ListField(child=serializers.CharField(max_length=255), allow_empty=False)
    tls = TlsSerializer(required=False)


class VirtualHostConfigSerializer(OmeSerializer):
    name = serializers.CharField(max_length=100, validators=[name_validator])
    distribution = serializers.CharField(max_length=100, required=False)
    host = HostSerializer()
    signedPolicy = serializers.DictField(required=False)
    admissionWebhooks = serializers.DictField(required=False)
    origins = serializers.DictField(required=False)
    originMapStore = serializers.DictField(required=False)
    # Only in export files: the vhost's applications.
    apps = ApplicationConfigSerializer(many=True, required=False, write_only=True)


def describe_errors(errors, prefix: str = "") -> str:
    """Flatten DRF validation errors into one readable line: ``host.names: This field is required.``"""
    if isinstance(errors, dict):
        parts = []
        for key, value in errors.items():
            where = prefix if key == "non_field_errors" else (f"{prefix}.{key}" if prefix else str(key))
            parts.append(describe_errors(value, where))
        return "; ".join(part for part in parts if part)
    if isinstance(errors, list):
        if all(isinstance(item, str) for item in errors):
            text = " ".join(str(item) for item in errors)
            return f"{prefix}: {text}" if prefix else text
        parts = [describe_errors(item, f"{prefix}[{index}]") for index, item in enumerate(errors) if item]
        return "; ".join(parts)
    return f"{prefix}: {errors}" if prefix else str(errors)
