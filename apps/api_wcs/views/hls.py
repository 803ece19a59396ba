"""WCS /hls/*: HLS of live streams. StreamHub's engine packages HLS for every live stream, so an
HLS "agent" exists exactly while its stream is live; subscribers are the engine's HLS viewer counts."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from apps.api_wcs.errors import WcsError
from apps.api_wcs.views.base import Method, found, wcs_application
from apps.streams.models import Stream


class HlsName(serializers.Serializer):
    name = serializers.CharField()


class Page(serializers.Serializer):
    offset = serializers.IntegerField(required=False, min_value=0, default=0)
    size = serializers.IntegerField(required=False, min_value=1, default=100)


class HlsIdPage(Page):
    hlsId = serializers.CharField()
    profileName = serializers.CharField(required=False)


class HlsObject(serializers.Serializer):
    hlsId = serializers.CharField()
    name = serializers.CharField()
    url = serializers.CharField()
    subscribers = serializers.IntegerField()


def hls_of(stream: Stream) -> dict:
    base = settings.STREAMHUB_MEDIA_URL or (
        f"http://{stream.node.address}:{stream.node.media_http_port}" if stream.node else ""
    )
    return {
        "hlsId": stream.name,
        "name": stream.name,
        "url": f"{base}/{stream.application.name}/{stream.name}/ts:playlist.m3u8",
        "subscribers": int((stream.connections or {}).get("hls", 0)),
    }


def live(name: str) -> Stream:
    stream = (
        Stream.objects.live()
        .select_related("application", "node")
        .filter(application=wcs_application(), name=name)
        .first()
    )
    if stream is None:
        raise WcsError(404, "Stream not found")
    return stream


def startup(data: dict) -> None:
    live(data["name"])  # HLS is packaged for every live stream: nothing to start


def find_all(data: dict) -> list[dict]:
    streams = Stream.objects.live().select_related("application", "node").filter(application=wcs_application())
    items = [hls_of(stream) for stream in streams.order_by("created_at")]
    return found(items[data["offset"] : data["offset"] + data["size"]], "Not found")


def subscribers(data: dict) -> dict:
    stream = live(data["hlsId"])
    return {"hlsId": stream.name, "subscribers": hls_of(stream)["subscribers"]}


METHODS = [
    Method("hls", "startup", startup, HlsName, None, "HLS of a live stream (always on)",
           ((404, "Stream not found"), (500, "Internal error"))),
    Method("hls", "find_all", find_all, Page, HlsObject(many=True), "Find all streams with HLS", ((404, "Not found"),)),
    Method("hls", "subscribers", subscribers, HlsIdPage, None, "HLS viewers of a stream",
           ((400, "Bad request"), (404, "Not found"))),
]  # fmt: skip
