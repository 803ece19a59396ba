"""WCS /cdn/*: StreamHub's engine nodes seen as a WCS CDN (node states, routes of live streams,
removing dead nodes) and the CDN transcoding profiles (apps/cdn). The stream ACL methods live in
access_list.py.

Nodes have a role (STREAMHUB_NODE_ROLE: origin, edge, transcoder). A stream's route is the node it
is published on (origin or transcoder) followed by the edges that pull it from there on demand
(apps.cdn StreamRoute rows, written by the edges). Edges reconnect by themselves, so
/cdn/connection/* check the node and answer 200."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from rest_framework import serializers

from apps.api_wcs.errors import WcsError
from apps.api_wcs.views.base import Method, found, wcs_application
from apps.cdn.models import CdnProfile, StreamRoute
from apps.cdn.services import ProfileError, ProfileExists, ProfileNotFound, add_profile, modify_profile, remove_profile
from apps.engine.choices import ProcessingState
from apps.engine.models import EngineNode
from apps.streams.choices import StreamState
from apps.streams.models import Stream


class NodeId(serializers.Serializer):
    nodeId = serializers.CharField(max_length=255)


class StateBody(serializers.Serializer):
    state = serializers.CharField(max_length=50, help_text="NEW_STREAMS_ALLOWED or GROUP_CONNECTION_ALLOWED")
    # StreamHub's API serves every node: nodeId picks one (WCS sets the node the request was sent to).
    nodeId = serializers.CharField(max_length=255, required=False, help_text="One node (default: this machine's)")


class StreamNameBody(serializers.Serializer):
    streamName = serializers.CharField(max_length=255)


class ProfileBody(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    profile = serializers.JSONField(help_text='{"audio": {"codec": "aac", "rate": 48000}, "video": {"height": 720}}')


class ProfileModifyBody(serializers.Serializer):
    """The profile is checked once the name is known: an unknown name is a 404 whatever the body."""

    name = serializers.CharField(max_length=100)
    profile = serializers.JSONField(
        required=False, default=None, help_text='{"audio": {"codec": "aac", "rate": 48000}, "video": {"height": 720}}'
    )


class ProfileName(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class CdnNode(serializers.Serializer):
    id = serializers.CharField()
    globalState = serializers.CharField(help_text="ACTIVE or PASSIVE")
    processingState = serializers.CharField()
    role = serializers.CharField(help_text="ORIGIN, EDGE or TRANSCODER")
    streams = serializers.IntegerField(help_text="Streams the node holds (published, or pulled by an edge)")
    viewers = serializers.IntegerField(help_text="Their viewers on this node (an origin counts each edge pull)")


class CdnStreamRoute(serializers.Serializer):
    streamName = serializers.CharField()
    route = serializers.ListField(child=serializers.CharField())


class CdnProfileObject(serializers.Serializer):
    name = serializers.CharField()
    profile = serializers.DictField()


def node_to_wcs(node: EngineNode) -> dict:
    return {
        "id": node.node_id,
        "globalState": "ACTIVE" if node.is_alive else "PASSIVE",
        "processingState": node.processing_state,
        "role": node.role.upper(),
        "streams": node.load_streams,
        "viewers": node.load_viewers,
    }


def node_of(node_id: str) -> EngineNode:
    node = EngineNode.objects.filter(node_id=node_id).first()
    if node is None:
        raise WcsError(404, "Node not found")
    return node


def show_nodes(data: dict) -> list[dict]:
    return [node_to_wcs(node) for node in EngineNode.objects.all()]


def show_state(data: dict) -> str:
    return EngineNode.local_processing_state()


def enforce_state(data: dict) -> None:
    if data["state"] not in ProcessingState.values:
        raise WcsError(400, f"Invalid state: use {' or '.join(ProcessingState.values)}")
    if data.get("nodeId"):
        node = node_of(data["nodeId"])
        node.processing_state = data["state"]
        node.save(update_fields=["processing_state"])
        return
    EngineNode.enforce_local_state(data["state"])


def live_streams():
    return Stream.objects.live().select_related("node").filter(application=wcs_application(), node__isnull=False)


def edge_routes():
    return StreamRoute.objects.select_related("edge", "origin", "stream").filter(
        stream__application=wcs_application(), stream__state=StreamState.LIVE
    )


def show_routes(data: dict) -> dict:
    """Route id -> stream name: ``0-{node}-{stream id}`` for the node a stream is published on, and
    ``{route id}-{origin}-{edge}`` for each edge pulling it."""
    routes = {f"0-{stream.node.node_id}-{stream.pk}": stream.name for stream in live_streams().order_by("pk")}
    for route in edge_routes().order_by("pk"):
        routes[f"{route.pk}-{route.origin.node_id}-{route.edge.node_id}"] = route.name
    if not routes:
        raise WcsError(404, "Not found")
    return routes


def stream_show_routes(data: dict) -> dict:
    """The node holding the stream, then the edges that pull it from there."""
    stream = live_streams().filter(name=data["streamName"]).first()
    if stream is None:
        raise WcsError(404, "Not found")
    edges = [route.edge.node_id for route in edge_routes().filter(stream=stream).order_by("started_at", "pk")]
    return {"streamName": stream.name, "route": [stream.node.node_id, *edges]}


def remove_node(data: dict) -> None:
    node = node_of(data["nodeId"])
    if node.is_alive:
        raise WcsError(400, "Active node can't be removed")
    node.delete()


def reset_connection(data: dict) -> None:
    node_of(data["nodeId"])  # no links between nodes: nothing to reset


def reset_all(data: dict) -> None:
    return None


def profile_add(data: dict) -> None:
    try:
        add_profile(data["name"], data["profile"])
    except ProfileExists:
        raise WcsError(400, f"Bad Request: profile {data['name']} exists") from None
    except ProfileError as error:
        raise WcsError(400, f"Bad Request: {error}") from None


def profile_modify(data: dict) -> None:
    try:
        modify_profile(data["name"], data["profile"])
    except ProfileNotFound:
        raise WcsError(404, "Not Found") from None
    except ProfileError as error:
        raise WcsError(400, f"Bad Request: {error}") from None


def profile_print(data: dict) -> list[dict]:
    return found([profile.to_wcs() for profile in CdnProfile.objects.all()], "Not Found")


def profile_remove(data: dict) -> None:
    try:
        remove_profile(data["name"])
    except ProfileNotFound:
        raise WcsError(404, "Not Found") from None


NODE_NOT_FOUND = ((404, "Node not found"),)
METHODS = [
    Method("cdn", "show_nodes", show_nodes, response=CdnNode(many=True), summary="Show CDN nodes state"),
    Method("cdn", "show_state", show_state, response=OpenApiTypes.STR,
           summary="Processing state of the engine nodes on this machine"),
    Method("cdn", "enforce_state", enforce_state, StateBody, None,
           "Set the processing state of this machine's nodes (or of nodeId)",
           ((400, "Invalid state"), (404, "Node not found"))),
    Method("cdn", "show_routes", show_routes, response=OpenApiTypes.OBJECT,
           summary="Show CDN routes (route id -> stream name)", errors=((404, "Not found"),)),
    Method("cdn", "stream/show_routes", stream_show_routes, StreamNameBody, CdnStreamRoute,
           "Show the route to play a stream", ((400, "Bad request"), (404, "Not found"))),
    Method("cdn", "remove_node", remove_node, NodeId, None, "Remove a dead (PASSIVE) node",
           ((400, "Bad request"), *NODE_NOT_FOUND, (500, "Internal Server Error"))),
    Method("cdn", "connection/reset_inbound", reset_connection, NodeId, None,
           "Reset inbound connection from this node", NODE_NOT_FOUND),
    Method("cdn", "connection/reset_outbound", reset_connection, NodeId, None,
           "Reset outbound connection to this node", NODE_NOT_FOUND),
    Method("cdn", "connection/reset_all", reset_all, summary="Reset all CDN connections on this node"),
    Method("cdn", "profile/add", profile_add, ProfileBody, None, "Add transcoding profile",
           ((400, "Bad Request"), (500, "Internal Server Error"))),
    Method("cdn", "profile/modify", profile_modify, ProfileModifyBody, None, "Change transcoding profile",
           ((400, "Bad Request"), (404, "Not Found"), (500, "Internal Server Error"))),
    Method("cdn", "profile/print", profile_print, response=CdnProfileObject(many=True),
           summary="Get the transcoding profiles list", errors=((404, "Not Found"),)),
    Method("cdn", "profile/remove", profile_remove, ProfileName, None, "Remove transcoding profile",
           ((400, "Bad Request"), (404, "Not Found"), (500, "Internal Server Error"))),
]  # fmt: skip
