"""OME v1 :sendEvent: ID3v2 timed metadata inserted into a live stream's LL-HLS (emsg) and HLS (timed_id3) output."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers

from apps.api_ome.envelope import OmeError, ok
from apps.api_ome.schema import ERROR_ENVELOPE, OK_ENVELOPE
from apps.api_ome.views.base import OmeAPIView
from apps.api_ome.views.streams import StreamLookupMixin
from apps.engine.commands import send_timed_metadata
from media_engine.hls.fmp4 import id3_priv_frame, id3_tag, id3_text_frame, id3_txxx_frame
from media_engine.hls.mpegts import MAX_METADATA_SIZE

FRAME_TYPE_ERROR = "Only TXXX, T??? (text information frames such as TIT2) and PRIV are supported."
MAX_EVENTS = 100


class Id3EventSerializer(serializers.Serializer):
    frameType = serializers.RegexField(
        r"^(TXXX|T[A-Z0-9]{3}|PRIV)$", help_text="TXXX, T??? (e.g. TIT2) or PRIV.",
        error_messages={"invalid": FRAME_TYPE_ERROR},
    )  # fmt: skip
    info = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=1000,
        help_text="TXXX: the description; PRIV: the owner identifier. Ignored for T???.",
    )  # fmt: skip
    data = serializers.CharField(
        allow_blank=True, trim_whitespace=False, max_length=MAX_METADATA_SIZE,
        help_text="TXXX: the value; T???: the information; PRIV: the private data (UTF-8).",
    )  # fmt: skip

    def validate(self, attrs):
        if attrs["frameType"] == "PRIV":
            try:
                attrs.get("info", "").encode("latin-1")
            except UnicodeEncodeError:
                message = "A PRIV owner identifier must be ISO-8859-1 text."
                raise serializers.ValidationError({"info": message}) from None
        return attrs

    @staticmethod
    def frame(event: dict) -> bytes:
        frame_type, info, data = event["frameType"], event.get("info", ""), event["data"]
        if frame_type == "TXXX":
            return id3_txxx_frame(info, data)
        if frame_type == "PRIV":
            return id3_priv_frame(info, data.encode())
        return id3_text_frame(frame_type, data)


class SendEventSerializer(serializers.Serializer):
    eventFormat = serializers.ChoiceField(["id3v2"], help_text="Only id3v2.")
    eventType = serializers.ChoiceField(
        ["event", "video", "audio"], required=False, default="event",
        help_text="Our outputs mux audio and video in one rendition: every type lands in the same place.",
    )  # fmt: skip
    events = Id3EventSerializer(many=True, allow_empty=False, max_length=MAX_EVENTS)

    def validate(self, attrs):
        attrs["id3"] = id3_tag(Id3EventSerializer.frame(event) for event in attrs["events"])
        if len(attrs["id3"]) > MAX_METADATA_SIZE:
            raise serializers.ValidationError({"events": f"The ID3 tag may not exceed {MAX_METADATA_SIZE} bytes."})
        return attrs


class SendEventView(StreamLookupMixin, OmeAPIView):
    @extend_schema(
        tags=["OME v1: streams"],
        summary="Send event",
        operation_id="omeSendEvent",
        description=(
            "Inserts ID3v2 timed metadata into the live stream: as an emsg box before the next LL-HLS part "
            "and as a timed_id3 PES in the HLS (MPEG-TS) output with the next packet."
        ),
        request=SendEventSerializer,
        responses={200: OK_ENVELOPE, 400: ERROR_ENVELOPE, 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE},
        examples=[
            OpenApiExample(
                "TXXX and TIT2",
                request_only=True,
                value={
                    "eventFormat": "id3v2",
                    "eventType": "video",
                    "events": [
                        {"frameType": "TXXX", "info": "AirenSoft", "data": "OvenMediaEngine"},
                        {"frameType": "TIT2", "data": "OvenMediaEngine 123"},
                    ],
                },
            )
        ],
    )
    def post(self, request, vhost: str, app: str, stream: str):
        live = self.get_live_stream(vhost, app, stream)
        spec = self.validated(SendEventSerializer, self.body_object())
        if not send_timed_metadata(live, spec["id3"]):
            # Its node stopped answering: the stream is about to end.
            raise OmeError(404, f"Could not find the stream: [{vhost}/#{vhost}#{app}/{stream}]")
        return ok()
