"""The OME JSON of "Create Stream (Pull)": the request body, validated."""

from __future__ import annotations

from rest_framework import serializers

from apps.security.outbound import check_outbound_url
from media_engine.jobs.pull import validate_pull_urls
from media_engine.names import STREAM_NAME_MAX_LENGTH, STREAM_NAME_PATTERN, STREAM_NAME_RULE


class PullPropertiesSerializer(serializers.Serializer):
    persistent = serializers.BooleanField(required=False, help_text="Not deleted until DELETE.")
    noInputFailoverTimeoutMs = serializers.IntegerField(
        required=False, min_value=0, max_value=86_400_000, help_text="Silence (ms) before the next URL."
    )
    unusedStreamDeletionTimeoutMs = serializers.IntegerField(
        required=False, min_value=0, max_value=2_147_483_647, help_text="Time (ms) without viewers before deletion."
    )
    ignoreRtcpSRTimestamp = serializers.BooleanField(required=False)


class CreatePullSerializer(serializers.Serializer):
    name = serializers.RegexField(
        STREAM_NAME_PATTERN,
        max_length=STREAM_NAME_MAX_LENGTH,
        help_text=f"Stream name to create: {STREAM_NAME_RULE}.",
        error_messages={"invalid": f"invalid name: {STREAM_NAME_RULE}"},
    )
    urls = serializers.ListField(
        child=serializers.CharField(max_length=2000),
        allow_empty=False,
        help_text="URLs to pull (rtsp://, rtmp://, http(s)://), one scheme; the next takes over on failure.",
    )
    properties = PullPropertiesSerializer(required=False)

    def validate_urls(self, urls: list[str]) -> list[str]:
        try:
            urls = validate_pull_urls(urls)[1]
            for url in urls:
                check_outbound_url(url)
            return urls
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from error
