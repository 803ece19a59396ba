"""WCS /hls/*: HLS of live streams. StreamHub's engine packages HLS for every live stream, so an
HLS "agent" exists while its stream is live unless /hls/terminate stopped it (the engine drops the
stream's HLS and LL-HLS until /hls/startup or the next publish); subscribers are the engine's HLS
viewers (a client address and User-Agent that fetched the stream's playlist or segments within
STREAMHUB_HLS_VIEWER_WINDOW seconds), as its heartbeats report them. One profile per stream:
"source" (the stream as published)."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from apps.api_wcs.errors import WcsError
from apps.api_wcs.views.base import Method, found, wcs_application
from apps.engine.commands import send_hls_state
from apps.streams.models import Stream

SOURCE_PROFILE = "source"


class HlsName(serializers.Serializer):
    name = serializers.CharField()


class Page(serializers.Serializer):
    offset = serializers.IntegerField(required=False, min_value=0, default=0)
    size = serializers.IntegerField(required=False, min_value=1, default=100)


class HlsIdPage(Page):
    hlsId = serializers.CharField()
    profileName = serializers.CharField(required=False)


class HlsProfile(serializers.Serializer):
    hlsId = serializers.CharField()
    profileName = serializers.CharField()
    subscribers = serializers.IntegerField()
    bitrate = serializers.IntegerField(help_text="bit/s received")
    width = serializers.IntegerField()
    height = serializers.IntegerField()


class HlsSubscriber(serializers.Serializer):
    id = serializers.CharField(help_text="<stream's mediaSessionId>-HLS-<number>, stable while the viewer watches")
    hlsId = serializers.CharField()
    profileName = serializers.CharField()
    ip = serializers.CharField(help_text="The viewer's client address")
    port = serializers.IntegerField(help_text="The client port of its last request")
    userAgent = serializers.CharField(help_text="Its User-Agent header (first 256 characters)")
    active = serializers.BooleanField(help_text="Always true: a viewer is listed while it counts")


class HlsObject(serializers.Serializer):
    hlsId = serializers.CharField()
    name = serializers.CharField()
    url = serializers.CharField()
    subscribers = serializers.IntegerField()


def hls_of(stream: Stream) -> dict:
    base = settings.STREAMHUB_MEDIA_URL or (
        f"http://{stream.node.address}:{stream.node.player_media_http_port}" if stream.node else ""
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


def switch_hls(stream: Stream, enabled: bool) -> None:
    if not send_hls_state(stream, enabled):
        raise WcsError(500, "Internal error: the stream's engine node does not answer")
    Stream.objects.filter(pk=stream.pk).update(hls_enabled=enabled)


def startup(data: dict) -> None:
    stream = live(data["name"])
    if not stream.hls_enabled:
        switch_hls(stream, True)


def terminate(data: dict) -> None:
    stream = (
        Stream.objects.live()
        .select_related("application__virtual_host", "node")
        .filter(application=wcs_application(), name=data["name"], hls_enabled=True)
        .first()
    )
    if stream is None:
        raise WcsError(404, "Not found")
    switch_hls(stream, False)


def profiles(data: dict) -> dict:
    stream = live(data["hlsId"])
    if not stream.hls_enabled or data.get("profileName", SOURCE_PROFILE) != SOURCE_PROFILE:
        raise WcsError(404, "Not found")
    video = next((track for track in stream.input_tracks or [] if track.get("kind") == "video"), {})
    return {
        "hlsId": stream.name,
        "profileName": SOURCE_PROFILE,
        "subscribers": hls_of(stream)["subscribers"],
        "bitrate": stream.last_throughput_in,
        "width": video.get("width", 0),
        "height": video.get("height", 0),
    }


def find_all(data: dict) -> list[dict]:
    streams = (
        Stream.objects.live()
        .select_related("application", "node")
        .filter(application=wcs_application(), hls_enabled=True)
    )
    items = [hls_of(stream) for stream in streams.order_by("created_at")]
    return found(items[data["offset"] : data["offset"] + data["size"]], "Not found")


def subscribers(data: dict) -> list[dict]:
    """One HLSSubscriber per HLS viewer session of the stream's last heartbeat (LL-HLS viewers are
    not WCS's HLS), oldest first, paged by offset/size; [] when nobody watches. The engine reports
    at most 1000 sessions per stream; ``subscribers`` of /hls/find_all still counts them all."""
    stream = live(data["hlsId"])
    if data.get("profileName", SOURCE_PROFILE) != SOURCE_PROFILE:
        raise WcsError(404, "Not found")
    viewers = sorted(
        (viewer for viewer in stream.hls_viewers or [] if viewer.get("protocol") == "hls"),
        key=lambda viewer: viewer.get("number", 0),
    )
    return [
        {
            "id": f"{stream.media_session_id}-HLS-{viewer.get('number', 0)}",
            "hlsId": stream.name,
            "profileName": SOURCE_PROFILE,
            "ip": viewer.get("address", ""),
            "port": viewer.get("port", 0),
            "userAgent": viewer.get("user_agent", ""),
            "active": True,
        }
        for viewer in viewers[data["offset"] : data["offset"] + data["size"]]
    ]


METHODS = [
    Method("hls", "startup", startup, HlsName, None, "HLS of a live stream (always on)",
           ((404, "Stream not found"), (500, "Internal error"))),
    Method("hls", "find_all", find_all, Page, HlsObject(many=True), "Find all streams with HLS", ((404, "Not found"),)),
    Method("hls", "terminate", terminate, HlsName, None, "Stop HLS (and LL-HLS) of the stream",
           ((404, "Not found"), (500, "Internal error"))),
    Method("hls", "profiles", profiles, HlsIdPage, HlsProfile, "HLS profile statistics",
           ((400, "Bad request"), (404, "Not found"))),
    Method("hls", "subscribers", subscribers, HlsIdPage, HlsSubscriber(many=True), "HLS viewers of a stream",
           ((400, "Bad request"), (404, "Not found"))),
]  # fmt: skip
