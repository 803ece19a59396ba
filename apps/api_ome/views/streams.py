"""OME v1 live streams of an application: list, info (input tracks and outputs), delete (disconnect)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

from apps.api_ome.envelope import OmeError, ok
from apps.api_ome.presenters import stream_info
from apps.api_ome.schema import ERROR_ENVELOPE, OK_ENVELOPE, enveloped, names_envelope
from apps.api_ome.views.base import OmeAPIView
from apps.streams.models import Stream
from apps.streams.services import request_stop

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
                .order_by("created_at")
                .values_list("name", flat=True)
            )
        )


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
        request_stop(self.get_live_stream(vhost, app, stream))
        return ok()
