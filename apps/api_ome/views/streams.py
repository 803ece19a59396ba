"""OME v1 live streams of an application: list, info (input tracks and outputs), delete (disconnect)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from apps.api_ome.envelope import OmeError, envelope, ok
from apps.api_ome.presenters import stream_info
from apps.api_ome.schema import ERROR_ENVELOPE, OK_ENVELOPE, enveloped, names_envelope
from apps.api_ome.serializers.pull import CreatePullSerializer
from apps.api_ome.views.base import OmeAPIView
from apps.jobs.choices import JobState
from apps.pull.services import StreamExists, active_pull_of, create_pull, stop_pull, wait_for_first_outcome
from apps.streams.models import Stream
from apps.streams.services import request_stop
from apps.transcoding.services import rendition_stream_names

STREAM_TAG = ["OME v1: streams"]

TRACK = inline_serializer(
    "OmeTrack",
    {
        "id": serializers.IntegerField(),
        "type": serializers.ChoiceField(["Video", "Audio"]),
        "video": serializers.DictField(required=False, help_text="codec, bitrate, framerate, width, height..."),
        "audio": serializers.DictField(required=False, help_text="codec, bitrate, samplerate, channel..."),
    },
)
STREAM_INFO = inline_serializer(
    "OmeStreamInfo",
    {
        "name": serializers.CharField(),
        "input": inline_serializer(
            "OmeStreamInput",
            {"createdTime": serializers.DateTimeField(), "sourceType": serializers.CharField(), "tracks": TRACK},
        ),
        "outputs": inline_serializer("OmeStreamOutput", {"name": serializers.CharField(), "tracks": TRACK}, many=True),
    },
)


class StreamLookupMixin:
    def get_live_stream(self, vhost: str, app: str, name: str) -> Stream:
        application = self.get_application(vhost, app)
        stream = (
            Stream.objects.live()
            .select_related("application__virtual_host", "node")
            .filter(application=application, name=name)
            .first()
        )
        if stream is None:
            # OME names streams internally as vhost/#vhost#app/stream, and says so.
            raise OmeError(404, f"Could not find the stream: [{vhost}/#{vhost}#{app}/{name}]")
        return stream


class StreamListView(OmeAPIView):
    @extend_schema(
        tags=STREAM_TAG,
        summary="Get stream list",
        operation_id="omeGetStreamList",
        responses={200: names_envelope("StreamNames", "live streams"), 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE},
    )
    def get(self, request, vhost: str, app: str):
        application = self.get_application(vhost, app)
        return ok(
            list(
                Stream.objects.live()
                .filter(application=application)
                .exclude(name__in=rendition_stream_names(application))  # outputs, listed in their input's info
                .order_by("created_at")
                .values_list("name", flat=True)
            )
        )

    @extend_schema(
        tags=STREAM_TAG,
        summary="Create stream (pull)",
        operation_id="omeCreateStreamPull",
        description=(
            "Creates a stream by pulling URLs (rtsp://, rtmp://, http(s):// files or HLS; all of one scheme; OVT "
            "is not supported). A media worker pulls it into the engine; the call waits for the stream to be "
            "live with its tracks known (201: its info lists them) or for every URL to fail (502)."
        ),
        request=CreatePullSerializer,
        responses={
            201: OK_ENVELOPE,
            400: ERROR_ENVELOPE,
            401: ERROR_ENVELOPE,
            404: ERROR_ENVELOPE,
            409: ERROR_ENVELOPE,
            502: ERROR_ENVELOPE,
        },  # fmt: skip
        examples=[
            OpenApiExample(
                "RTSP pull",
                request_only=True,
                value={
                    "name": "new_stream_name",
                    "urls": ["rtsp://192.168.0.160:553/app/stream"],
                    "properties": {
                        "persistent": False,
                        "noInputFailoverTimeoutMs": 3000,
                        "unusedStreamDeletionTimeoutMs": 60000,
                        "ignoreRtcpSRTimestamp": False,
                    },
                },  # fmt: skip
            )
        ],
    )
    def post(self, request, vhost: str, app: str):
        application = self.get_application(vhost, app)
        spec = self.validated(CreatePullSerializer, self.body_object())
        try:
            pull = create_pull(application, spec["name"], spec["urls"], spec.get("properties"))
        except StreamExists as exists:
            raise OmeError(409, f"A stream with the same name already exists: [{vhost}/{app}/{exists}]") from exists
        pull = wait_for_first_outcome(pull, settings.PULL_CREATE_WAIT_SECONDS)
        if pull.state == JobState.ERROR:
            raise OmeError(502, "Failed to pull provided URL")
        return Response(envelope(201), status=201)


class StreamDetailView(StreamLookupMixin, OmeAPIView):
    @extend_schema(
        tags=STREAM_TAG,
        summary="Get stream information",
        operation_id="omeGetStreamInformation",
        responses={200: enveloped("StreamInfo", STREAM_INFO), 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE},
    )
    def get(self, request, vhost: str, app: str, stream: str):
        return ok(stream_info(self.get_live_stream(vhost, app, stream)))

    @extend_schema(
        tags=STREAM_TAG,
        summary="Delete stream",
        operation_id="omeDeleteStream",
        description="Disconnects the publisher.",
        responses={200: OK_ENVELOPE, 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE},
    )
    def delete(self, request, vhost: str, app: str, stream: str):
        # A pulled stream is deleted by ending its pull (the engine alone would see it come back).
        pull = active_pull_of(self.get_application(vhost, app), stream)
        if pull is not None:
            stop_pull(pull)
        try:
            live = self.get_live_stream(vhost, app, stream)
        except OmeError:
            if pull is None:
                raise
            return ok()  # a persistent pull between sources: stopped, nothing live to disconnect
        request_stop(live)
        return ok()
