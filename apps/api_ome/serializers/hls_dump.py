"""The OME JSON of HLS dumps: :startHlsDump and :stopHlsDump requests, validated (paths stay under the
media root or an operator's extra output root, STREAMHUB_EXTRA_OUTPUT_ROOTS)."""

from __future__ import annotations

import re

from rest_framework import serializers

from apps.hls_dump.models import dump_folder
from apps.hosting.models import task_id_validator
from apps.jobs.paths import UnsafePath, confine_output

PLAYLIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.m3u8$")


class StartHlsDumpSerializer(serializers.Serializer):
    outputStreamName = serializers.CharField(max_length=255, help_text="The (output) stream to dump.")
    id = serializers.CharField(max_length=200, help_text="Unique id of the dump.", validators=[task_id_validator])
    outputPath = serializers.CharField(
        max_length=1000,
        help_text="A folder of its own under the media root or an extra output root (created if needed; not a root).",
    )
    playlist = serializers.ListField(
        child=serializers.RegexField(PLAYLIST_NAME, max_length=100, error_messages={
            "invalid": "A playlist is a file name ending in .m3u8, e.g. llhls.m3u8."
        }),
        required=False, max_length=10, help_text="Master playlist file names to write into outputPath.",
    )  # fmt: skip
    infoFile = serializers.CharField(
        max_length=1000,
        required=False,
        help_text="XML info file under the media root or an extra output root; must not exist yet.",
    )
    userData = serializers.CharField(max_length=10000, required=False, allow_blank=True, trim_whitespace=False)

    def validate_outputPath(self, value: str) -> str:
        try:
            return str(dump_folder(value))
        except UnsafePath as error:
            raise serializers.ValidationError(str(error)) from error

    def validate_infoFile(self, value: str) -> str:
        try:
            path = confine_output(value)
        except UnsafePath as error:
            raise serializers.ValidationError(str(error)) from error
        if path.exists():
            raise serializers.ValidationError(f"{value}: a file of that name already exists")
        return str(path)


class StopHlsDumpSerializer(serializers.Serializer):
    outputStreamName = serializers.CharField(max_length=255)
    id = serializers.CharField(max_length=200, required=False, help_text="Without it: every dump of the stream.")
