"""WCS /pull/*: WebRTC pulls from and pushes to other nodes (their WHEP and WHIP URLs), on the
WebRTC relay service; the engine node carries them out."""

from __future__ import annotations

from rest_framework import serializers

from apps.api_wcs.errors import WcsError
from apps.api_wcs.views.base import Method, found, wcs_application
from apps.webrtc_relay import services
from apps.webrtc_relay.models import WebRtcRelay


class PullRequest(serializers.Serializer):
    uri = serializers.CharField(max_length=1000, help_text="The other node's WHEP URL (or its application's URL).")
    localStreamName = serializers.CharField(max_length=255)
    remoteStreamName = serializers.CharField(
        max_length=255, required=False, allow_blank=True, help_text="Appended to uri when given."
    )


class PushRequest(serializers.Serializer):
    uri = serializers.CharField(max_length=1000, help_text="The other node's WHIP URL (or its application's URL).")
    localStreamName = serializers.CharField(max_length=255, required=False)
    remoteStreamName = serializers.CharField(max_length=255, required=False, allow_blank=True)
    localMediaSessionId = serializers.CharField(required=False, help_text="Accepted as the local stream name.")


class PullFilter(serializers.Serializer):
    uri = serializers.CharField(required=False)
    localMediaSessionId = serializers.CharField(required=False)
    remoteMediaSessionId = serializers.CharField(required=False)
    localStreamName = serializers.CharField(required=False)
    remoteStreamName = serializers.CharField(required=False)
    status = serializers.CharField(required=False)


class PullAgentObject(serializers.Serializer):
    uri = serializers.CharField()
    localMediaSessionId = serializers.CharField()
    remoteMediaSessionId = serializers.CharField()
    localStreamName = serializers.CharField()
    remoteStreamName = serializers.CharField()
    status = serializers.CharField()


def pull_agent(relay: WebRtcRelay) -> dict:
    return {
        "uri": relay.uri,
        "localMediaSessionId": relay.relay_id,
        "remoteMediaSessionId": relay.relay_id,
        "localStreamName": relay.local_stream_name,
        "remoteStreamName": relay.remote_stream_name,
        "status": relay.status,
        "direction": relay.direction,
    }


def _started(start, data: dict, local_name: str) -> dict:
    try:
        relay = start(wcs_application(), data["uri"], local_name, data.get("remoteStreamName") or "")
    except services.RelayRefused as error:
        raise WcsError(error.status, str(error)) from error
    return pull_agent(relay)


def pull(data: dict) -> dict:
    return _started(services.start_pull, data, data["localStreamName"])


def push(data: dict) -> dict:
    local_name = data.get("localStreamName") or data.get("localMediaSessionId")
    if not local_name:
        raise WcsError(400, "Bad request: localStreamName is not set")
    return _started(services.start_push, data, local_name)


def _matching(data: dict) -> list[WebRtcRelay]:
    relays = WebRtcRelay.objects.active().filter(application=wcs_application())
    fields = {
        "uri": "uri",
        "localMediaSessionId": "relay_id",
        "remoteMediaSessionId": "relay_id",
        "localStreamName": "local_stream_name",
        "remoteStreamName": "remote_stream_name",
        "status": "status",
    }
    for key, field in fields.items():
        if data.get(key):
            relays = relays.filter(**{field: data[key]})
    return list(relays.select_related("node"))


def find_all(data: dict) -> list[dict]:
    return found([pull_agent(relay) for relay in _matching({})], "Not found")


def terminate(data: dict) -> None:
    relays = _matching(data)
    if not relays:
        raise WcsError(404, "Not found")
    for relay in relays:
        services.terminate(relay)


CONFLICT = ((400, "Bad request"), (409, "Conflict"), (500, "Internal error"))
METHODS = [
    Method("pull", "pull", pull, PullRequest, PullAgentObject, "Pull a WebRTC stream from another node's WHEP URL",
           CONFLICT),
    Method("pull", "push", push, PushRequest, PullAgentObject, "Push a WebRTC stream to another node's WHIP URL",
           ((404, "Stream not found"), *CONFLICT)),
    Method("pull", "find_all", find_all, response=PullAgentObject(many=True),
           summary="Find all pulled and pushed WebRTC streams", errors=((404, "Not found"),)),
    Method("pull", "terminate", terminate, PullFilter, None, "Terminate pulled or pushed WebRTC streams",
           ((404, "Not found"),)),
]  # fmt: skip
