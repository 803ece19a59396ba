"""Operator pages of the streams app: an HLS / LL-HLS player (hls.js served locally) for a live stream."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from apps.streams.models import Stream


def media_base_url(request: HttpRequest, stream: Stream) -> str:
    """Where players reach the stream's engine node: STREAMHUB_MEDIA_URL, or this host on the node's port."""
    if settings.STREAMHUB_MEDIA_URL:
        return settings.STREAMHUB_MEDIA_URL.rstrip("/")
    host = request.get_host().rsplit(":", 1)[0] if ":" in request.get_host() else request.get_host()
    port = stream.node.player_media_http_port if stream.node else settings.ENGINE_HTTP_PORT
    return f"{request.scheme}://{host}:{port}"


@staff_member_required
def play(request: HttpRequest, pk: int) -> HttpResponse:
    stream = get_object_or_404(Stream.objects.select_related("application__virtual_host", "node"), pk=pk)
    base = media_base_url(request, stream)
    # ?llhls=1: LL-HLS (CMAF parts, blocking reload) with hls.js in low-latency mode; plain HLS otherwise.
    low_latency = request.GET.get("llhls") == "1"
    playlist = "llhls.m3u8" if low_latency else "ts:playlist.m3u8"
    context = {
        **admin.site.each_context(request),
        "stream": stream,
        "hls_url": f"{base}/{stream.application.name}/{stream.name}/{playlist}",
        "low_latency": low_latency,
        "title": f"Play {stream}",
    }
    return render(request, "streams/player.html", context)
