"""Engine nodes: which machines run the media engine, where they listen, and whether they are alive;
and the publish claims that let one node (or worker process) at a time take a stream key."""

from __future__ import annotations

import socket
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.engine.choices import NodeRole, ProcessingState
from apps.hosting.services import find_virtual_host
from media_engine import internal_auth


class EngineNode(models.Model):
    node_id = models.CharField("node id", max_length=100, unique=True, help_text="Stable name of the node.")
    hostname = models.CharField("host name", max_length=255)
    address = models.CharField(
        "address", max_length=255, default="127.0.0.1", help_text="Where workers and other nodes reach this node."
    )
    rtmp_port = models.PositiveIntegerField("RTMP port")
    media_http_port = models.PositiveIntegerField("media HTTP port")
    # A worker process of `runengine --processes N` records its private ports above (where jobs and
    # siblings reach it in particular) and the ports players use, shared by all workers, here.
    public_rtmp_port = models.PositiveIntegerField(
        "public RTMP port", null=True, blank=True, help_text="Shared by the worker processes of one machine."
    )
    public_media_http_port = models.PositiveIntegerField(
        "public media HTTP port", null=True, blank=True, help_text="Shared by the worker processes of one machine."
    )
    started_at = models.DateTimeField("started", default=timezone.now)
    last_heartbeat = models.DateTimeField("last heartbeat", default=timezone.now)
    processing_state = models.CharField(
        "processing state",
        max_length=30,
        choices=ProcessingState.choices,
        default=ProcessingState.NEW_STREAMS_ALLOWED,
        help_text="Pulls and relays choose only nodes that allow new streams (WCS /cdn/enforce_state).",
    )
    role = models.CharField(
        "role",
        max_length=20,
        choices=NodeRole.choices,
        default=NodeRole.ORIGIN,
        help_text="STREAMHUB_NODE_ROLE of the node: edges refuse publishes and pull streams from origins.",
    )
    # Load, from the last heartbeat: streams held (published here or pulled by an edge) and their viewers.
    load_streams = models.PositiveIntegerField("streams", default=0)
    load_viewers = models.PositiveIntegerField("viewers", default=0)

    class Meta:
        ordering = ["node_id"]
        verbose_name = "engine node"

    def __str__(self) -> str:
        return self.node_id

    @property
    def player_media_http_port(self) -> int:
        """The media HTTP port players use (the public one of a worker process)."""
        return self.public_media_http_port or self.media_http_port

    @property
    def player_rtmp_port(self) -> int:
        return self.public_rtmp_port or self.rtmp_port

    @property
    def command_group(self) -> str:
        """The Channels group this node reads commands from (stop a stream...)."""
        return engine_command_group(self.node_id)

    def rtmp_url(self, app: str, stream: str, *, publish: bool = False, vhost: str | None = None) -> str:
        """Where a media job plays (or with ``publish``, publishes) a stream of this node, as any RTMP
        client would, with an internal job token that lets it past the application's access control.

        ``vhost`` defaults to the one the engine resolves this node's address to. The URL holds a
        credential: log or store it only through `media_engine.internal_auth.redact_url`.
        """
        url = f"rtmp://{self.address}:{self.rtmp_port}/{app}/{stream}"
        return internal_auth.with_job_token(url, job_token(self.vhost_name(vhost), app, stream, publish=publish))

    def media_http_url(self, app: str, stream: str, *, vhost: str | None = None) -> tuple[str, dict[str, str]]:
        """The base URL (``http://node:port/{app}/{stream}/``) of a stream's HLS/LL-HLS output, and the
        query parameters (the internal job token) a media job adds to its first playlist request."""
        url = f"http://{self.address}:{self.media_http_port}/{app}/{stream}/"
        return url, {internal_auth.JOB_QUERY_KEY: job_token(self.vhost_name(vhost), app, stream, publish=False)}

    def vhost_name(self, vhost: str | None = None) -> str:
        """``vhost``, or the virtual host the engine finds for this node's address (as it does for a job's URL)."""
        if vhost:
            return vhost
        found = find_virtual_host(self.address)
        return found.name if found is not None else ""

    @property
    def is_alive(self) -> bool:
        return self.last_heartbeat >= timezone.now() - timedelta(seconds=settings.ENGINE_NODE_TIMEOUT)

    @classmethod
    def for_new_streams(cls) -> EngineNode | None:
        """The node a new pulled stream goes to: alive, allowing new streams, latest heartbeat."""
        nodes = (
            cls.objects.filter(processing_state=ProcessingState.NEW_STREAMS_ALLOWED)
            .filter(role=NodeRole.ORIGIN)  # edges take no publishes, transcoders hold CDN renditions
            .order_by("-last_heartbeat")
        )
        return next((node for node in nodes if node.is_alive), None)

    @property
    def allows_routing(self) -> bool:
        """Whether edges may start new routes to or on this node (WCS /cdn/enforce_state)."""
        return self.is_alive and self.processing_state == ProcessingState.NEW_STREAMS_ALLOWED

    @classmethod
    def local(cls) -> models.QuerySet[EngineNode]:
        """The nodes on this machine (WCS's "this CDN node"); every node if none runs here."""
        here = cls.objects.filter(hostname=socket.gethostname())
        return here if here.exists() else cls.objects.all()

    @classmethod
    def local_processing_state(cls) -> str:
        states = set(cls.local().values_list("processing_state", flat=True))
        if not states or ProcessingState.NEW_STREAMS_ALLOWED in states:
            return ProcessingState.NEW_STREAMS_ALLOWED
        return ProcessingState.GROUP_CONNECTION_ALLOWED

    @classmethod
    def enforce_local_state(cls, state: str) -> int:
        return cls.local().update(processing_state=ProcessingState(state))

    @classmethod
    def stale(cls) -> models.QuerySet[EngineNode]:
        return cls.objects.filter(last_heartbeat__lt=timezone.now() - timedelta(seconds=settings.ENGINE_NODE_TIMEOUT))


class PublishClaim(models.Model):
    """A stream key an engine node is taking or holding a publish of: at most one node per key, so two
    publishes of one key on two nodes (or two worker processes of a node) at the same moment cannot
    both pass. Taken before the engine opens the stream (`apps.engine.control_plane.PublishClaims`),
    released when the publisher leaves; a dead node's claim is taken over."""

    vhost = models.CharField("virtual host", max_length=255)
    app = models.CharField("application", max_length=255)
    name = models.CharField("stream", max_length=255)
    node = models.ForeignKey(EngineNode, on_delete=models.CASCADE, related_name="publish_claims")
    claimed_at = models.DateTimeField("claimed", default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["vhost", "app", "name"], name="%(app_label)s_%(class)s_one_node_per_key")
        ]

    def __str__(self) -> str:
        return f"{self.vhost}/{self.app}/{self.name} on {self.node_id}"


def internal_job_secret() -> str:
    """The secret engine nodes and workers share for internal job tokens."""
    return settings.STREAMHUB_INTERNAL_SECRET or internal_auth.derive_secret(settings.SECRET_KEY)


def job_token(vhost: str, app: str, stream: str, *, publish: bool = False) -> str:
    """An internal job token to play (or publish) ``vhost/app/stream`` on any engine node."""
    direction = internal_auth.PUBLISH if publish else internal_auth.PLAY
    return internal_auth.make_job_token(
        internal_job_secret(), vhost, app, stream, direction, ttl=settings.STREAMHUB_INTERNAL_TOKEN_TTL
    )


def engine_command_group(node_id: str) -> str:
    safe = "".join(char if char.isalnum() or char in "-_." else "_" for char in node_id)
    return f"engine-node-{safe}"[:90]
