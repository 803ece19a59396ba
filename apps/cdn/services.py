"""CDN services: transcoding profiles (validated as WCS documents them), the node states WCS's
CDN shows (an engine node in GROUP_CONNECTION_ALLOWED takes no new pulls), and the origin-edge
cluster: where an edge pulls a stream from (`locate`), renditions of CDN profiles made on request
(`start_profile_transcode`), and the routes edges report (`sync_routes`, `clean_routes`)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import models, transaction
from django.utils import timezone

from apps.cdn.models import CdnProfile, StreamRoute
from apps.engine.choices import NodeRole, ProcessingState
from apps.engine.models import EngineNode
from apps.jobs import services as jobs
from apps.jobs.choices import ACTIVE_STATES, RUNNING_STATES
from apps.streams.choices import StreamState
from apps.streams.models import Stream

logger = logging.getLogger(__name__)

VIDEO_CODECS = ("h264", "vp8")
AUDIO_CODECS = ("aac", "opus", "pcma", "pcmu", "mp3")
# Each field of a profile's video/audio part: (type, minimum, maximum).
VIDEO_FIELDS = {
    "width": (int, 16, 7680), "height": (int, 16, 4320), "fps": (int, 1, 120), "gop": (int, 1, 1000),
    "bitrate": (int, 1, 100_000), "quality": (int, 0, 51), "codec": (str, None, None), "codecImpl": (str, None, None),
    "preset": (str, None, None), "profile": (str, None, None),
}  # fmt: skip
AUDIO_FIELDS = {
    "codec": (str, None, None),
    "rate": (int, 8000, 96000),
    "bitrate": (int, 1, 1_000),
    "channels": (int, 1, 8),
}
PROFILE_NAME = re.compile(r"^[-\w.]{1,100}$")


class ProfileError(ValueError):
    """A profile that WCS would refuse (the message says why)."""


class ProfileExists(ProfileError):
    pass


class ProfileNotFound(LookupError):
    pass


def check_part(part: object, fields: dict, codecs: tuple[str, ...], kind: str) -> dict:
    if part is None:
        return {}
    if not isinstance(part, dict):
        raise ProfileError(f"profile.{kind} must be an object")
    for key, value in part.items():
        if key not in fields:
            raise ProfileError(f"profile.{kind}.{key} is not a known field ({', '.join(fields)})")
        kind_of, low, high = fields[key]
        if kind_of is int:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ProfileError(f"profile.{kind}.{key} must be a whole number from {low} to {high}")
        elif not isinstance(value, str) or not value.strip() or len(value) > 100:
            raise ProfileError(f"profile.{kind}.{key} must be a short text")
    codec = part.get("codec")
    if codec is not None and codec.lower() not in codecs:
        raise ProfileError(f"profile.{kind}.codec {codec!r} is not supported ({', '.join(codecs)})")
    return dict(part)


def check_profile(name: object, profile: object) -> tuple[str, dict, dict]:
    if not isinstance(name, str) or not PROFILE_NAME.match(name):
        raise ProfileError("name must be 1-100 letters, digits, '-', '_' or '.'")
    if not isinstance(profile, dict) or not (profile.get("audio") or profile.get("video")):
        raise ProfileError("profile must have an audio or a video part")
    unknown = set(profile) - {"audio", "video"}
    if unknown:
        raise ProfileError(f"profile.{sorted(unknown)[0]} is not a known part (audio, video)")
    audio = check_part(profile.get("audio"), AUDIO_FIELDS, AUDIO_CODECS, "audio")
    video = check_part(profile.get("video"), VIDEO_FIELDS, VIDEO_CODECS, "video")
    return name, audio, video


def add_profile(name: object, profile: object) -> CdnProfile:
    name, audio, video = check_profile(name, profile)
    with transaction.atomic():
        if CdnProfile.objects.filter(name=name).exists():
            raise ProfileExists(f"profile {name} exists")
        return CdnProfile.objects.create(name=name, audio=audio, video=video)


def modify_profile(name: object, profile: object) -> CdnProfile:
    """Change the profile ``name``: ProfileNotFound for an unknown name whatever ``profile`` is
    (WCS answers 404 before it reads the profile), ProfileError for a bad profile."""
    with transaction.atomic():
        row = CdnProfile.objects.select_for_update().filter(name=name).first() if isinstance(name, str) else None
        if row is None:
            raise ProfileNotFound(name)
        name, audio, video = check_profile(name, profile)
        row.audio, row.video = audio, video
        row.save(update_fields=["audio", "video", "updated_at"])
        return row


def remove_profile(name: str) -> None:
    deleted, _ = CdnProfile.objects.filter(name=name).delete()
    if not deleted:
        raise ProfileNotFound(name)


# --- origin-edge routes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """Where an edge pulls a stream from: the RTMP URL (with an internal job token: log it through
    internal_auth.redact_url), the holding node's id and its media HTTP base URL."""

    url: str
    origin: str
    http_base: str


@dataclass(frozen=True)
class MirrorState:
    """One mirror (pull) of an edge, as its engine reports it every heartbeat."""

    vhost: str
    app: str
    name: str
    origin: str
    started_at: float  # wall clock
    viewers: int
    bytes_in: int
    state: str = ""


# The WCS transcoders that make CDN profile renditions for edges (others are the API's own).
CDN_TRANSCODER_URI = "transcoder://cdn/"


class TranscodeRefused(Exception):
    """A {stream}-{profile} that cannot be produced (the message says why)."""


def holder_of(stream: Stream) -> Holder:
    node = stream.node
    app = stream.application
    return Holder(
        url=node.rtmp_url(app.name, stream.name, vhost=app.virtual_host.name),
        origin=node.node_id,
        http_base=f"http://{node.address}:{node.media_http_port}",
    )


def holding_stream(edge_id: str, vhost: str, app: str, name: str) -> Stream | None:
    """The live row of ``vhost/app/name`` on a node an edge may pull from: alive, allowing routing
    (WCS /cdn/enforce_state), not the edge itself. An origin or a transcoder, or another edge: an
    edge's own pulls (mirrors) have no rows, so a live row on an edge is a CDN profile's rendition
    that its transcode publishes there (`rendition_node`)."""
    stream = (
        Stream.objects.live()
        .select_related("node", "application__virtual_host")
        .filter(application__virtual_host__name=vhost, application__name=app, name=name)
        .exclude(node__node_id=edge_id)
        .exclude(node__isnull=True)
        .filter(node__role__in=[NodeRole.ORIGIN, NodeRole.TRANSCODER, NodeRole.EDGE])
        .first()
    )
    if stream is None or not stream.node.allows_routing:
        return None
    return stream


def edge_takes_routes(edge_id: str) -> bool:
    """An edge set to GROUP_CONNECTION_ALLOWED (WCS /cdn/enforce_state) starts no new pulls."""
    node = EngineNode.objects.filter(node_id=edge_id).first()
    return node is not None and node.processing_state == ProcessingState.NEW_STREAMS_ALLOWED


def locate(edge_id: str, vhost: str, app: str, name: str) -> Holder | None:
    """Where the edge ``edge_id`` pulls ``vhost/app/name`` from; None when no node of the cluster may
    give it (unknown stream, its node dead or out of routing, this edge out of routing)."""
    if not edge_takes_routes(edge_id):
        return None
    stream = holding_stream(edge_id, vhost, app, name)
    return holder_of(stream) if stream is not None else None


def profile_of(name: str) -> tuple[str, CdnProfile] | None:
    """``{stream}-{profile}`` (WCS's naming: the profile "-720p" or "720p" makes "cam-720p"): the
    input stream's name and the profile; None if no profile's suffix ends ``name``."""
    for profile in CdnProfile.objects.all():
        suffix = profile.name if profile.name.startswith("-") else f"-{profile.name}"
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], profile
    return None


def rendition_node(edge_id: str) -> EngineNode | None:
    """The node a CDN profile's rendition is published to: an alive transcoder allowing new streams
    (the least loaded), else the edge ``edge_id`` that asked for it (its engine takes the transcode's
    output and other edges pull it from there, so the origin only gives the transcode its input)."""
    nodes = EngineNode.objects.filter(role=NodeRole.TRANSCODER, processing_state=ProcessingState.NEW_STREAMS_ALLOWED)
    alive = [node for node in nodes.order_by("load_streams", "node_id") if node.is_alive]
    return alive[0] if alive else EngineNode.objects.filter(node_id=edge_id).first()


def live_on(node_id: str, vhost: str, app: str, name: str) -> bool:
    """Whether the node ``node_id`` holds ``vhost/app/name`` as a published stream (its live row)."""
    return (
        Stream.objects.live()
        .filter(application__virtual_host__name=vhost, application__name=app, name=name, node__node_id=node_id)
        .exists()
    )


def profile_encoder(profile: CdnProfile) -> dict:
    """A CDN profile as a WCS transcoder's encoder object (video) plus its audio part."""
    video = profile.video or {}
    codec = str(video.get("codec") or "h264").lower()
    if codec != "h264":
        raise TranscodeRefused(f"profile {profile.name}: video codec {codec} cannot be carried over RTMP to edges")
    encoder = {"type": "H264"}
    for ours, theirs in (("width", "width"), ("height", "height"), ("fps", "fps"), ("bitrate", "bitrate")):
        if video.get(ours):
            encoder[theirs] = video[ours]
    if video.get("gop"):
        encoder["keyFrameInterval"] = video["gop"]
    if video.get("preset"):
        encoder["preset"] = video["preset"]
    audio = profile.audio or {}
    if audio:
        audio_codec = str(audio.get("codec") or "aac").lower()
        if audio_codec != "aac":
            raise TranscodeRefused(f"profile {profile.name}: audio codec {audio_codec} cannot be carried over RTMP")
        encoder["cdnAudio"] = {key: audio[key] for key in ("rate", "bitrate", "channels") if key in audio}
    return encoder


def start_profile_transcode(edge_id: str, vhost: str, app: str, name: str) -> bool:
    """For a viewer of ``{stream}-{profile}`` on an edge: make sure one WCS transcoder produces that
    rendition (published on a transcoder node, else on this edge: `rendition_node`) for all edges.
    False if ``name`` is no profile of a stream the cluster holds."""
    from apps.transcoding.models import WcsTranscoder
    from apps.transcoding.transcoders import wcs_transcoder_task

    if not edge_takes_routes(edge_id):
        return False
    found = profile_of(name)
    if found is None:
        return False
    input_name, profile = found
    source = holding_stream(edge_id, vhost, app, input_name)
    if source is None:
        return False
    encoder = profile_encoder(profile)
    uri = f"{CDN_TRANSCODER_URI}{vhost}/{app}/{name}"[:255]
    output = rendition_node(edge_id)
    with transaction.atomic():
        # Locked: viewers on several edges may ask at once; one job serves them all.
        if WcsTranscoder.objects.select_for_update().filter(uri=uri, state__in=ACTIVE_STATES).exists():
            return True
        job = WcsTranscoder.objects.create(
            application=source.application,
            api_version=1,
            uri=uri,
            stream_name=input_name,
            local_stream_name=name,
            encoder=encoder,
            output_node=output,
        )
        jobs.dispatch(job, wcs_transcoder_task())
    logger.info("edge %s: %s asked for: transcoding %s with profile %s", edge_id, name, input_name, profile.name)
    return True


def sync_routes(edge: EngineNode, mirrors: list[MirrorState]) -> None:
    """The edge's routes as its engine reports them: one per mirror whose origin row is known, the
    others (ended pulls) deleted."""
    keep: list[int] = []
    for mirror in mirrors:
        stream = (
            Stream.objects.live()
            .filter(
                application__virtual_host__name=mirror.vhost,
                application__name=mirror.app,
                name=mirror.name,
                node__node_id=mirror.origin,
            )
            .select_related("node")
            .first()
        )
        if stream is None:
            continue
        route, _ = StreamRoute.objects.update_or_create(
            edge=edge,
            stream=stream,
            defaults={
                "origin": stream.node,
                "name": mirror.name,
                "started_at": datetime.fromtimestamp(mirror.started_at, tz=UTC),
                "viewers": mirror.viewers,
                "bytes_in": mirror.bytes_in,
                "state": mirror.state[:30],
            },
        )
        keep.append(route.pk)
    StreamRoute.objects.filter(edge=edge).exclude(pk__in=keep).delete()


def clean_routes() -> int:
    """Routes of dead nodes or ended streams go (a node that stopped heartbeating pulls nothing)."""
    if not StreamRoute.objects.exists():
        return 0  # (a node without edges: one cheap look instead of the join below, every few seconds)
    stale = EngineNode.stale()
    deleted, _ = StreamRoute.objects.filter(
        models.Q(edge__in=stale) | models.Q(origin__in=stale) | ~models.Q(stream__state=StreamState.LIVE)
    ).delete()
    return deleted


def edge_routes_of(stream: Stream) -> list[StreamRoute]:
    """The edges pulling ``stream`` (its live row on the holding node), with their viewers."""
    return list(StreamRoute.objects.filter(stream=stream).select_related("edge").order_by("edge__node_id"))


def stop_unwatched_profile_transcodes(grace: float) -> int:
    """CDN profile renditions that no edge pulls and nobody plays any more stop (a viewer asks for them
    again); ``grace``: seconds a new rendition has for its first edge to start pulling."""
    from apps.transcoding.models import WcsTranscoder
    from apps.transcoding.transcoders import stop_wcs_transcoder

    stopped = 0
    running = WcsTranscoder.objects.filter(uri__startswith=CDN_TRANSCODER_URI, state__in=RUNNING_STATES)
    for job in running:
        output = Stream.objects.live().filter(application_id=job.application_id, name=job.local_stream_name).first()
        started = job.started_at or job.created_at
        if output is None:
            if (timezone.now() - started).total_seconds() < grace:
                continue  # still starting
        elif (
            output.routes.exists()
            or output.total_connections
            or (timezone.now() - output.created_at).total_seconds() < grace
        ):
            continue
        logger.info("%s: no edge pulls %s any more: stopped", job, job.local_stream_name)
        stop_wcs_transcoder(job)
        stopped += 1
    return stopped
