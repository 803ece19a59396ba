"""The OME JSON of push tasks: the :startPush request (validated) and the push as OME shows it."""

from __future__ import annotations

from rest_framework import serializers

from apps.api_ome.serializers.jobs import job_to_ome
from apps.api_ome.serializers.recording import RecordStreamSerializer
from apps.hosting.models import task_id_validator
from apps.jobs.choices import JobState
from apps.push.choices import PushProtocol
from apps.push.models import Push
from apps.security.outbound import check_outbound_url
from media_engine.jobs.push import validate_push_target


class StartPushSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=200, help_text="Unique id of the push task.", validators=[task_id_validator])
    stream = RecordStreamSerializer()
    protocol = serializers.ChoiceField(PushProtocol.values)
    url = serializers.CharField(max_length=1000, help_text="rtmp://host[:port]/app, udp://host:port, srt://host:port")
    streamKey = serializers.CharField(
        max_length=500, required=False, allow_blank=True, help_text="Required for rtmp (the spec); not used otherwise."
    )

    def validate(self, attrs):
        # The spec: streamKey (required) for rtmp, (optional) for srt and mpegts.
        if attrs["protocol"] == PushProtocol.RTMP and not attrs.get("streamKey"):
            raise serializers.ValidationError({"streamKey": "This field is required for rtmp."})
        try:
            validate_push_target(attrs["protocol"], attrs["url"])
            check_outbound_url(attrs["url"])
        except ValueError as error:
            raise serializers.ValidationError({"url": str(error)}) from error
        return attrs


class PushIdSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=200)


class PushSerializer(serializers.Serializer):
    """For the OpenAPI schema: a push task as OME shows it."""

    id = serializers.CharField()
    state = serializers.ChoiceField(
        JobState.values,
        help_text="OME's push states, and StreamHub's \"retrying\": the target went away and the push "
        "reconnects with backoff (``error`` says why).",
    )
    vhost = serializers.CharField()
    app = serializers.CharField()
    stream = RecordStreamSerializer()
    protocol = serializers.CharField()
    url = serializers.CharField()
    streamKey = serializers.CharField()
    sentBytes = serializers.IntegerField()
    sentTime = serializers.IntegerField()
    sequence = serializers.IntegerField()
    totalsentBytes = serializers.IntegerField()
    totalsentTime = serializers.IntegerField()
    createdTime = serializers.DateTimeField()
    startTime = serializers.DateTimeField()
    finishTime = serializers.DateTimeField()
    error = serializers.CharField(
        required=False, help_text="StreamHub's addition: the last failure while retrying, or why it is in error."
    )


def push_to_ome(push: Push) -> dict:
    return job_to_ome(
        push,
        push.push_id,
        protocol=push.protocol,
        url=push.url,
        streamKey=push.stream_key,
        sentBytes=push.sent_bytes,
        sentTime=push.sent_time_ms,
        # OME spells these two with a lower-case "s".
        totalsentBytes=push.total_sent_bytes,
        totalsentTime=push.total_sent_time_ms,
    )
