"""OME v1 current statistics of a virtual host, an application or a stream."""

from __future__ import annotations

from django.db.models import Q
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

from apps.api_ome.envelope import ok
from apps.api_ome.presenters import stats
from apps.api_ome.schema import ERROR_ENVELOPE, enveloped
from apps.api_ome.views.base import OmeAPIView
from apps.api_ome.views.streams import StreamLookupMixin
from apps.cdn.services import edge_routes_of
from apps.streams.models import Stream
from apps.transcoding.services import transcoding_cost

STATS_TAG = ["OME v1: statistics"]
_TIME = serializers.DateTimeField
_INT = serializers.IntegerField
STATS = enveloped(
    "OmeStats",
    inline_serializer(
        "OmeStatsBody",
        {
            "connections": serializers.DictField(child=_INT(), help_text="Viewers per protocol."),
            "createdTime": _TIME(),
            "lastRecvTime": _TIME(),
            "lastSentTime": _TIME(),
            "lastUpdatedTime": _TIME(),
            "maxTotalConnectionTime": _TIME(),
            "maxTotalConnections": _INT(),
            "totalConnections": _INT(),
            "totalBytesIn": _INT(),
            "totalBytesOut": _INT(),
            "lastThroughputIn": _INT(),
            "lastThroughputOut": _INT(),
            "avgThroughputIn": _INT(),
            "avgThroughputOut": _INT(),
            "maxThroughputIn": _INT(),
            "maxThroughputOut": _INT(),
            # StreamHub's addition: the viewers of each edge that pulls the stream (stream stats only).
            "edges": inline_serializer(
                "OmeEdgeViewers",
                {"node": serializers.CharField(), "viewers": _INT(help_text="The edge's viewers of the stream.")},
                many=True,
                required=False,
            ),
            # StreamHub's addition: what the transcodes of these streams cost (OME clients ignore it).
            "transcoding": inline_serializer(
                "OmeTranscodingCost",
                {
                    "jobs": _INT(help_text="Running transcodes (one per stream and output profile)."),
                    "cpuUsage": serializers.FloatField(help_text="Their CPU now, in percent of one core."),
                    "cpuTime": serializers.FloatField(help_text="Their CPU seconds since they started."),
                },
                required=False,
            ),
        },  # fmt: skip
    ),
)
RESPONSES = {200: STATS, 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE}


class VirtualHostStatsView(OmeAPIView):
    @extend_schema(
        tags=STATS_TAG, summary="Get statistics of virtual host", operation_id="omeVhostStats", responses=RESPONSES
    )
    def get(self, request, vhost: str):
        virtual_host = self.get_vhost(vhost)
        body = stats(virtual_host.created_at, Stream.objects.filter(application__virtual_host=virtual_host))
        return ok({**body, "transcoding": transcoding_cost(Q(application__virtual_host=virtual_host))})


class ApplicationStatsView(OmeAPIView):
    @extend_schema(
        tags=STATS_TAG, summary="Get statistics of application", operation_id="omeAppStats", responses=RESPONSES
    )
    def get(self, request, vhost: str, app: str):
        application = self.get_application(vhost, app)
        body = stats(application.created_at, application.streams.all())
        return ok({**body, "transcoding": transcoding_cost(Q(application=application))})


class StreamStatsView(StreamLookupMixin, OmeAPIView):
    @extend_schema(
        tags=STATS_TAG, summary="Get statistics of stream", operation_id="omeStreamStats", responses=RESPONSES
    )
    def get(self, request, vhost: str, app: str, stream: str):
        live = self.get_live_stream(vhost, app, stream)
        cost = transcoding_cost(Q(application_id=live.application_id, stream_name=live.name))
        # Connections are the holding node's (an edge's pull is one rtmp connection there); each edge's
        # own viewers are listed apart (StreamHub's addition, README "Origin-edge cluster").
        edges = [{"node": route.edge.node_id, "viewers": route.viewers} for route in edge_routes_of(live)]
        return ok({**stats(live.created_at, [live]), "transcoding": cost, "edges": edges})
