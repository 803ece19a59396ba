"""The OME JSON shape of the hosting configuration: serializers that validate vhosts, applications
and output profiles as OME's API takes them, shared by the OME API, import/export and the admin.
"""

from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.hosting.choices import (
    DEFAULT_OUTPUT_PROFILE_ENCODES,
    DEFAULT_OUTPUT_PROFILE_NAME,
    DEFAULT_PROVIDERS,
    DEFAULT_PUBLISHERS,
    ORIGIN_STREAM_NAME_MACRO,
    ApplicationType,
)
from apps.hosting.models import name_validator

VIDEO_CODECS = ["h264", "h265", "vp8"]
AUDIO_CODECS = ["aac", "opus"]
IMAGE_CODECS = ["jpeg", "png", "webp"]
_BITRATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string", "example": "2.5M"}]})
class BitrateField(serializers.Field):
    """Bits per second, as a number or as OME's "2500000", "2500K" or "2.5M"."""

    default_error_messages = {"invalid": "A bitrate is a positive number of bits per second, e.g. 2500000 or '2.5M'."}

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
        if value <= 0:
            self.fail("invalid")
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
    bitrate = BitrateField(required=False)
    width = serializers.IntegerField(required=False, min_value=-1, max_value=7680)
    height = serializers.IntegerField(required=False, min_value=-1, max_value=4320)
    framerate = serializers.FloatField(required=False, min_value=0, max_value=240)
    keyFrameInterval = serializers.IntegerField(required=False, min_value=0)
    bFrames = serializers.IntegerField(required=False, min_value=0, max_value=16)
    preset = serializers.CharField(required=False, max_length=50)
    profile = serializers.CharField(required=False, max_length=50)
    threadCount = serializers.IntegerField(required=False, min_value=0)
    skipFrames = serializers.IntegerField(required=False)
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
    bitrate = BitrateField(required=False)
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
    outputStreamName = serializers.CharField(max_length=200)
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


class ApplicationConfigSerializer(OmeSerializer):
    name = serializers.CharField(max_length=100, validators=[name_validator])
    type = serializers.ChoiceField(ApplicationType.values)
    dynamic = serializers.BooleanField(required=False, read_only=True)
    outputProfiles = OutputProfilesSerializer(required=False)
    providers = serializers.DictField(required=False, child=serializers.JSONField())
    publishers = serializers.DictField(required=False, child=serializers.JSONField())

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
