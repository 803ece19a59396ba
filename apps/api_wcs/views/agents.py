"""WCS streams made by StreamHub from elsewhere, all on the pull service: /pull/rtmp/* (RTMP pull),
/rtsp/* (RTSP cameras), /vod/* (a file under the media root played as live) and /mpegts/*
(an MPEG-TS listener on a port the call allocates; the WCS table spells it /mpepts/, both work).

An agent that failed (a dead camera...) stays findable, with status FAILED and its ``error``, for
``WCS_FAILED_AGENT_KEEP_SECONDS`` after it failed, so a client polling /rtsp/find learns why;
/…/terminate of it dismisses it at once. An MPEG-TS agent shows the address its publisher sends to
(``WCS_MPEGTS_ADVERTISED_HOST``, else the host the call came to) and is CONNECTED until data flows."""

from __future__ import annotations

import socket
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from apps.api_wcs.errors import WcsError
from apps.api_wcs.presenters import pull_agent_to_wcs, pull_status
from apps.api_wcs.views.base import Method, caller_host, found, wcs_application
from apps.jobs.choices import ACTIVE_STATES, JobState
from apps.jobs.paths import UnsafePath
from apps.pull.models import Pull
from apps.pull.services import StreamExists, create_listener, create_pull, create_vod, stop_pull
from media_engine.jobs.pull import SCHEME_GROUPS


class UriRequest(serializers.Serializer):
    uri = serializers.CharField(max_length=2000)
    localStreamName = serializers.CharField(max_length=255, required=False)


class VodStartup(UriRequest):
    loop = serializers.BooleanField(required=False, default=False)


class AgentFilter(serializers.Serializer):
    uri = serializers.CharField(required=False)
    localStreamName = serializers.CharField(required=False)
    localMediaSessionId = serializers.CharField(required=False)
    status = serializers.CharField(required=False)


class MpegtsStartup(serializers.Serializer):
    localStreamName = serializers.CharField(max_length=255)
    transport = serializers.ChoiceField(["udp", "tcp", "UDP", "TCP"], required=False, default="udp")
    hasAudio = serializers.BooleanField(required=False, default=True)
    hasVideo = serializers.BooleanField(required=False, default=True)
    timeout = serializers.IntegerField(
        required=False,
        min_value=1000,
        max_value=86_400_000,
        default=90000,
        help_text="ms without data before the stream ends (at most a day)",
    )
    maxTimestampDiff = serializers.IntegerField(required=False, help_text="Accepted; timestamps are not rewritten.")


class AgentObject(serializers.Serializer):
    uri = serializers.CharField(help_text="MPEG-TS: where the publisher sends to.")
    localStreamName = serializers.CharField()
    localMediaSessionId = serializers.CharField()
    status = serializers.CharField(
        help_text="NEW, PUBLISHING (MPEG-TS: CONNECTED until data flows), STOPPING, or FAILED (kept a few minutes)"
    )
    error = serializers.CharField(help_text="Why it failed (FAILED), else empty.")


class MpegtsObject(AgentObject):
    transport = serializers.CharField()
    hasAudio = serializers.BooleanField()
    hasVideo = serializers.BooleanField()
    timeout = serializers.IntegerField()


def stream_name_of(uri: str) -> str:
    """The local name of a stream pulled without one: the last part of its URL's path."""
    name = urlsplit(uri).path.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise WcsError(400, f"Bad request: give a localStreamName ({uri} names no stream)")
    return name


SOURCE_TYPES = {"rtmp": "RtmpPull", "rtsp": "RtspPull", "vod": "File", "mpegts": "Mpegts"}


def agents(kind: str):
    """The active agents of a kind (those that hold a URI, a port, a stream name)."""
    return Pull.objects.filter(application=wcs_application(), source_type=SOURCE_TYPES[kind], state__in=ACTIVE_STATES)


def recently_failed(kind: str):
    """The agents of a kind that failed within the last WCS_FAILED_AGENT_KEEP_SECONDS, latest first."""
    since = timezone.now() - timedelta(seconds=settings.WCS_FAILED_AGENT_KEEP_SECONDS)
    return (
        Pull.objects.filter(application=wcs_application(), source_type=SOURCE_TYPES[kind], state=JobState.ERROR)
        .filter(finished_at__gte=since)
        .order_by("-finished_at")
    )


def findable(kind: str) -> list[Pull]:
    """What /…/find shows: the active agents (oldest first), then the recently failed ones."""
    return [*agents(kind).order_by("created_at", "pk"), *recently_failed(kind)]


def advertised_host() -> str:
    """The host an MPEG-TS publisher sends to: the setting, else the host the call came to, else the
    listening address (when it is one address, not all of them)."""
    if settings.WCS_MPEGTS_ADVERTISED_HOST:
        return settings.WCS_MPEGTS_ADVERTISED_HOST
    if caller_host():
        return caller_host()
    return settings.WCS_MPEGTS_HOST if settings.WCS_MPEGTS_HOST not in ("0.0.0.0", "::") else "127.0.0.1"


def public_uri(pull: Pull) -> str:
    """The agent's uri as WCS shows it; for an MPEG-TS listener, where its publisher sends to."""
    url = pull.urls[0] if pull.urls else ""
    if pull.source_type != SOURCE_TYPES["mpegts"] or not url:
        return url
    parts = urlsplit(url)
    host = advertised_host()
    netloc = f"[{host}]:{parts.port}" if ":" in host else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))  # not "?listen=1": the publisher calls


def present(pull: Pull) -> dict:
    return pull_agent_to_wcs(pull, public_uri(pull))


def select(kind: str, data: dict) -> list[Pull]:
    result = []
    for pull in findable(kind):
        if data.get("uri") and data["uri"] not in (pull.urls[0], public_uri(pull)):
            continue
        if data.get("localStreamName") and pull.stream_name != data["localStreamName"]:
            continue
        if data.get("localMediaSessionId") and str(pull.media_session_id) != data["localMediaSessionId"]:
            continue
        if data.get("status") and pull_status(pull) != data["status"].upper():
            continue
        result.append(pull)
    return result


def start(kind: str, data: dict, create) -> Pull:
    if any(pull.urls[0] == data.get("uri") for pull in agents(kind) if data.get("uri")):
        raise WcsError(409, "Conflict: already in use")
    try:
        return create()
    except StreamExists as error:
        raise WcsError(409, f"Conflict: a stream named {error} exists") from error
    except (ValueError, UnsafePath) as error:
        raise WcsError(400, f"Bad request: {error}") from error


def terminate(kind: str, data: dict, not_found: str) -> None:
    pulls = select(kind, data)
    if not pulls or not any(data.get(key) for key in ("uri", "localStreamName", "localMediaSessionId", "status")):
        raise WcsError(404, not_found)
    for pull in pulls:
        stop_pull(pull)


# -- RTMP pull, RTSP ------------------------------------------------------------------------------


def url_pull(kind: str):
    """/pull/rtmp/pull and /rtsp/startup: a pull of ``uri`` into ``localStreamName`` (default: the
    URL's last path part), kept until terminated."""

    def startup(data: dict) -> None:
        if SCHEME_GROUPS.get(urlsplit(data["uri"]).scheme.lower()) != kind:
            raise WcsError(400, f"Bad request: {data['uri']} is not an {kind}:// URL")
        name = data.get("localStreamName") or stream_name_of(data["uri"])
        properties = {"unusedStreamDeletionTimeoutMs": 0}
        start(kind, data, lambda: create_pull(wcs_application(), name, [data["uri"]], properties))

    return startup


# -- VOD ------------------------------------------------------------------------------------------


def vod_startup(data: dict) -> None:
    uri = data["uri"]
    name = data.get("localStreamName") or uri.split("://", 1)[-1]
    start("vod", data, lambda: create_vod(wcs_application(), name, uri, loop=data.get("loop", False)))


# -- MPEG-TS --------------------------------------------------------------------------------------


def free_mpegts_port(transport: str) -> int:
    """A port of WCS_MPEGTS_PORTS that no active listener has and that is free on this machine."""
    low, high = settings.WCS_MPEGTS_PORTS
    taken = {urlsplit(pull.urls[0]).port for pull in agents("mpegts")}
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    for port in range(low, high + 1):
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((settings.WCS_MPEGTS_HOST, port))
            except OSError:
                continue
        return port
    raise WcsError(500, f"Internal error: no free MPEG-TS port in {low}-{high}")


def mpegts_startup(data: dict) -> dict:
    transport = data["transport"].lower()
    port = free_mpegts_port(transport)
    host = settings.WCS_MPEGTS_HOST
    url = f"udp://{host}:{port}" if transport == "udp" else f"tcp://{host}:{port}?listen=1"
    pull = start(
        "mpegts", {}, lambda: create_listener(wcs_application(), data["localStreamName"], url, data["timeout"])
    )
    return {
        **present(pull),
        "transport": transport,
        "hasAudio": data["hasAudio"],
        "hasVideo": data["hasVideo"],
        "timeout": data["timeout"],
    }


def finder(kind: str, what: str):
    def find(data: dict) -> list[dict]:
        return found([present(pull) for pull in select(kind, data)], what)

    return find


def terminator(kind: str, what: str):
    return lambda data: terminate(kind, data, what)


CONFLICT = ((409, "Conflict"), (500, "Internal error"))
METHODS = [
    Method("pull/rtmp", "pull", url_pull("rtmp"), UriRequest, None, "Pull an RTMP stream by URL", CONFLICT),
    Method("pull/rtmp", "find_all", finder("rtmp", "Not found"), response=AgentObject(many=True),
           summary="Find all pulled RTMP streams", errors=((404, "Not found"),)),
    Method("pull/rtmp", "terminate", terminator("rtmp", "Not found"), AgentFilter, None,
           "Terminate a pulled RTMP stream", ((404, "Not found"),)),
    Method("rtsp", "startup", url_pull("rtsp"), UriRequest, None, "Create an RTSP session",
           ((409, "Already in use"), (500, "Internal error"))),
    Method("rtsp", "find", finder("rtsp", "RTSP not found"), AgentFilter, AgentObject(many=True),
           "Find RTSP sessions by filter", ((404, "RTSP not found"),)),
    Method("rtsp", "find_all", finder("rtsp", "RTSP not found"), response=AgentObject(many=True),
           summary="Find all RTSP sessions", errors=((404, "RTSP not found"),)),
    Method("rtsp", "terminate", terminator("rtsp", "RTSP not found"), AgentFilter, None,
           "Stop and terminate an RTSP session", ((404, "RTSP not found"),)),
    Method("vod", "startup", vod_startup, VodStartup, None, "Play a file under the media root as a live stream",
           CONFLICT),
    Method("vod", "find", finder("vod", "VODs not found"), AgentFilter, AgentObject(many=True), "Find VOD translations",
           ((404, "VODs not found"),)),
    Method("vod", "find_all", finder("vod", "VODs not found"), response=AgentObject(many=True),
           summary="Find all VOD translations", errors=((404, "VODs not found"),)),
    Method("vod", "terminate", terminator("vod", "VOD not found"), AgentFilter, None, "Stop a VOD translation",
           ((404, "VOD not found"),)),
]  # fmt: skip
for group in ("mpegts", "mpepts"):
    METHODS += [
        Method(group, "startup", mpegts_startup, MpegtsStartup, MpegtsObject, "Start MPEG-TS publishing", CONFLICT),
        Method(group, "find", finder("mpegts", "Not found"), AgentFilter, AgentObject(many=True),
               "Find MPEG-TS streams", ((404, "Not found"),)),
        Method(group, "find_all", finder("mpegts", "Not found"), response=AgentObject(many=True),
               summary="Find all MPEG-TS streams", errors=((404, "Not found"),)),
        Method(group, "terminate", terminator("mpegts", "Not found"), AgentFilter, None, "Stop an MPEG-TS stream",
               ((404, "Not found"),)),
    ]  # fmt: skip
