"""The OME JSON of record tasks: the :startRecord request (validated) and the record as OME shows it."""

from __future__ import annotations

from rest_framework import serializers

from apps.api_ome.serializers.jobs import job_to_ome
from apps.hosting.models import task_id_validator
from apps.jobs.paths import UnsafePath, check_template
from apps.recording.choices import RecordState, SegmentationRule
from apps.recording.models import Record
from media_engine.jobs.record import parse_schedule


class RecordStreamSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255, help_text="Output stream name.")
    variantNames = serializers.ListField(child=serializers.CharField(), required=False)
    trackIds = serializers.ListField(child=serializers.IntegerField(), required=False)


class StartRecordSerializer(serializers.Serializer):
    id = serializers.CharField(
        max_length=200, help_text="Unique id of the recording task.", validators=[task_id_validator]
    )
    stream = RecordStreamSerializer()
    filePath = serializers.CharField(max_length=500, required=False, help_text="Under the media root; ${...} macros.")
    infoPath = serializers.CharField(max_length=500, required=False, help_text="Under the media root; ${...} macros.")
    interval = serializers.IntegerField(
        required=False, min_value=1000, max_value=2_147_483_647, help_text="Milliseconds per file."
    )
    schedule = serializers.CharField(
        required=False, max_length=100, help_text='"<second> <minute> <hour>", e.g. "0 */1 *".'
    )
    segmentationRule = serializers.ChoiceField(SegmentationRule.values, required=False)
    metadata = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    def validate_schedule(self, value: str) -> str:
        try:
            parse_schedule(value)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from error
        return value

    def validate_filePath(self, value: str) -> str:
        return self._path(value, (".mp4", ".ts"))

    def validate_infoPath(self, value: str) -> str:
        return self._path(value, (".xml",))

    def _path(self, value: str, extensions: tuple[str, ...]) -> str:
        try:
            check_template(value, extensions)
        except UnsafePath as error:
            raise serializers.ValidationError(str(error)) from error
        return value

    def validate(self, attrs):
        if "interval" in attrs and "schedule" in attrs:
            raise serializers.ValidationError("interval and schedule cannot be used together")
        return attrs


class RecordIdSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=200)


class RecordSerializer(serializers.Serializer):
    """For the OpenAPI schema: a record task as OME shows it."""

    id = serializers.CharField()
    state = serializers.ChoiceField(RecordState.values, help_text="OME's record states.")
    vhost = serializers.CharField()
    app = serializers.CharField()
    stream = RecordStreamSerializer()
    filePath = serializers.CharField()
    infoPath = serializers.CharField()
    interval = serializers.IntegerField(required=False)
    schedule = serializers.CharField(required=False)
    segmentationRule = serializers.CharField()
    metadata = serializers.CharField(required=False)
    sequence = serializers.IntegerField()
    createdTime = serializers.DateTimeField()
    startTime = serializers.DateTimeField()
    finishTime = serializers.DateTimeField()
    recordBytes = serializers.IntegerField()
    recordTime = serializers.IntegerField()
    totalRecordBytes = serializers.IntegerField()
    totalRecordTime = serializers.IntegerField()
    error = serializers.CharField(
        required=False, help_text="StreamHub's addition: why it is in error (or waits again for its stream)."
    )


def record_to_ome(record: Record) -> dict:
    optional = {"interval": record.interval_ms, "schedule": record.schedule, "metadata": record.metadata}
    return job_to_ome(
        record,
        record.record_id,
        state=record.record_state,
        filePath=record.file_path,
        infoPath=record.info_path,
        segmentationRule=record.segmentation_rule,
        recordBytes=record.record_bytes,
        recordTime=record.record_time_ms,
        totalRecordBytes=record.total_record_bytes,
        totalRecordTime=record.total_record_time_ms,
        **{key: value for key, value in optional.items() if value},
    )
