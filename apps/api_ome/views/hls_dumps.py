"""OME v1 :startHlsDump / :stopHlsDump: a live stream's LL-HLS output written to a folder under the media root."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema

from apps.api_ome.envelope import OmeError, ok
from apps.api_ome.schema import ERROR_ENVELOPE, OK_ENVELOPE
from apps.api_ome.serializers.hls_dump import StartHlsDumpSerializer, StopHlsDumpSerializer
from apps.api_ome.views.base import OmeAPIView
from apps.api_ome.views.streams import StreamLookupMixin
from apps.hls_dump.services import DumpConflict, active_dumps, create_dump, stop_dump

TAG = ["OME v1: HLS dump"]
ERRORS = {400: ERROR_ENVELOPE, 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE}


class StartHlsDumpView(StreamLookupMixin, OmeAPIView):
    @extend_schema(
        tags=TAG,
        summary="Start dump",
        operation_id="omeStartHlsDump",
        description=(
            "Writes the LL-HLS output of the live stream outputStreamName (init and complete segments, its media "
            "playlist, the requested master playlists, the XML info file) into outputPath while it is live. "
            "Paths must stay under the media root or a folder of STREAMHUB_EXTRA_OUTPUT_ROOTS."
        ),
        request=StartHlsDumpSerializer,
        responses={200: OK_ENVELOPE, 409: ERROR_ENVELOPE, **ERRORS},
        examples=[
            OpenApiExample(
                "Dump with an info file",
                request_only=True,
                value={
                    "outputStreamName": "stream",
                    "id": "unique_dump_id",
                    "outputPath": "dumps/stream",
                    "playlist": ["llhls.m3u8"],
                    "infoFile": "dumps/unique_info_file_name.info",
                    "userData": "access_key_id='AKIAXFOT7EWH3ZA4XXXX'",
                },
            )
        ],
    )
    def post(self, request, vhost: str, app: str, stream: str):
        self.get_live_stream(vhost, app, stream)
        spec = self.validated(StartHlsDumpSerializer, self.body_object())
        live = self.get_live_stream(vhost, app, spec["outputStreamName"])
        try:
            create_dump(live.application, spec)
        except DumpConflict as conflict:
            raise OmeError(409, f"Duplicate ID already exists: [{conflict}]") from conflict
        return ok()


class StopHlsDumpView(OmeAPIView):
    @extend_schema(
        tags=TAG,
        summary="Stop dump",
        operation_id="omeStopHlsDump",
        description="Ends the dump `id` of outputStreamName (every dump of it without `id`); its playlist becomes VOD.",
        request=StopHlsDumpSerializer,
        responses={200: OK_ENVELOPE, **ERRORS},
    )
    def post(self, request, vhost: str, app: str, stream: str):
        application = self.get_application(vhost, app)
        spec = self.validated(StopHlsDumpSerializer, self.body_object())
        dumps = list(active_dumps(application, spec["outputStreamName"], spec.get("id")))
        if not dumps:
            wanted = spec.get("id") or spec["outputStreamName"]
            raise OmeError(404, f"Could not find the dump: [{vhost}/{app}/{wanted}]")
        for dump in dumps:
            stop_dump(dump)
        return ok()
