"""The Django shell around one media engine node: registers the node, heartbeats (with every live
stream's counters), ends streams of silent nodes, and carries out API commands from the Channels layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.cdn import services as cdn_services
from apps.cdn.engine import EdgeLocator, mirror_states
from apps.cdn.models import StreamRoute
from apps.cdn.services import MirrorState
from apps.engine.choices import NodeRole
from apps.engine.claims import release_all
from apps.engine.control_plane import DatabaseControlPlane, snapshot_of
from apps.engine.models import EngineNode, internal_job_secret
from apps.engine.signals import node_heartbeat
from apps.hosting.services import tls_entries
from apps.streams import services as stream_services
from apps.streams.models import Stream
from apps.webrtc_relay.engine import RelayCommands
from apps.webrtc_relay.services import end_relays_of_node
from media_engine.commands import (
    BadCommand,
    Command,
    InsertTimedMetadata,
    ReloadCertificates,
    SetHls,
    StartRelay,
    StopRelay,
    StopStream,
    parse_command,
)
from media_engine.http.front import WebServerFront
from media_engine.http.limits import HttpLimits
from media_engine.http.siblings import SiblingProxy, report_audiences
from media_engine.jobs.thumbnail import ThumbnailStore
from media_engine.node import EngineNode as MediaEngineNode
from media_engine.node import HlsSettings, NodeAddresses, NodeLimits
from media_engine.rtmp.chunks import RtmpLimits
from media_engine.webrtc.ice import policy_from_settings
from media_engine.webrtc.service import WebRtcSettings

if TYPE_CHECKING:
    from media_engine.relay.mirror import Locate

logger = logging.getLogger(__name__)

# Pauses before reading commands again after the channel layer failed (doubling up to the maximum).
COMMAND_RETRY_FIRST = 0.5
COMMAND_RETRY_MAX = 10.0
# How often the node joins its command group again (the Redis layer expires members after a day).
COMMAND_GROUP_REFRESH = 3600.0


def register_node(node_id: str, rtmp_port: int, http_port: int) -> EngineNode:
    node, _ = EngineNode.objects.update_or_create(
        node_id=node_id,
        defaults={
            "hostname": socket.gethostname(),
            "address": settings.ENGINE_NODE_ADDRESS,
            "rtmp_port": rtmp_port,
            "media_http_port": http_port,
            "started_at": timezone.now(),
            "last_heartbeat": timezone.now(),
            "role": settings.ENGINE_NODE_ROLE,
            "load_streams": 0,
            "load_viewers": 0,
        },
    )
    StreamRoute.objects.filter(edge=node).delete()  # an edge that restarts pulls nothing yet
    release_all(node)  # nor holds a publish claim (a worker restarted under the same id)
    # Streams this node had before a crash or restart are not live any more.
    for stream in Stream.objects.live().filter(node=node).select_related("application__virtual_host", "node"):
        stream.end()
        stream_services.publish_event("ended", stream)
    end_relays_of_node(node)
    return node


def heartbeat(
    node: EngineNode,
    snapshots: list,
    load: tuple[int, int] = (0, 0),
    mirrors: list[MirrorState] | None = None,
    stored: Mapping[int, stream_services.CounterSnapshot] | None = None,
    check_stale_nodes: bool = True,
) -> None:
    """``load``: the streams the node holds (published or pulled from an origin) and their viewers;
    ``mirrors``: an edge's pulls (its CDN routes). The node's time and its streams' counters (only
    what changed since ``stored``, see `record_counters`) go in one transaction; the chores of the
    cluster that any node may do (ending the streams of silent nodes, dropping dead routes, stopping
    unwatched CDN transcodes) run when asked: every worker of every node need not do them every
    heartbeat, and they cost an idle worker more than its own heartbeat."""
    # One commit for the node and its counters.
    with transaction.atomic():
        EngineNode.objects.filter(pk=node.pk).update(
            last_heartbeat=timezone.now(), load_streams=load[0], load_viewers=load[1]
        )
        stream_services.record_counters(snapshots, stored)
    if check_stale_nodes:
        stream_services.end_streams_of_stale_nodes()
    if mirrors is not None:
        cdn_services.sync_routes(node, mirrors)
    if check_stale_nodes:
        cdn_services.clean_routes()
        cdn_services.stop_unwatched_profile_transcodes(settings.ENGINE_EDGE_TRANSCODE_IDLE)
    node_heartbeat.send_robust(sender=EngineNode, node=node, snapshots=snapshots)


def webrtc_settings(ice_ports: str | None = None) -> WebRtcSettings:
    """The node's WebRTC settings (ICE addresses, port range, STUN/TURN) from Django's settings;
    ``ice_ports``: a worker process's share of the port range."""
    policy = policy_from_settings(
        settings.WEBRTC_ICE_ADDRESSES,
        settings.WEBRTC_ICE_PORTS if ice_ports is None else ice_ports,
        settings.WEBRTC_ICE_SERVERS,
        settings.WEBRTC_TURN_USERNAME,
        settings.WEBRTC_TURN_CREDENTIAL,
    )
    return WebRtcSettings(ice=policy, keyframe_interval=settings.WEBRTC_KEYFRAME_INTERVAL)


def node_limits() -> NodeLimits:
    """The limits on the media ports from Django's settings (README: "Limits on the media ports")."""
    return NodeLimits(
        http=HttpLimits(
            header_timeout=settings.ENGINE_HTTP_HEADER_TIMEOUT,
            keepalive_timeout=settings.ENGINE_HTTP_KEEPALIVE_TIMEOUT,
            max_connections=settings.ENGINE_HTTP_MAX_CONNECTIONS,
            send_timeout=settings.ENGINE_HTTP_SEND_TIMEOUT,
        ),
        rtmp=RtmpLimits(
            max_message_size=settings.ENGINE_RTMP_MAX_MESSAGE_BYTES,
            max_pending_bytes=settings.ENGINE_RTMP_MAX_PENDING_BYTES,
            max_node_pending_bytes=settings.ENGINE_RTMP_NODE_PENDING_BYTES,
            max_connections=settings.ENGINE_RTMP_MAX_CONNECTIONS,
        ),
    )


def record_worker_ports(node: EngineNode, engine: MediaEngineNode) -> None:
    """A worker process's row: its private ports (where jobs and siblings reach it) and the public ones."""
    node.rtmp_port = engine.rtmp.private_port
    node.media_http_port = engine.http.private_port
    node.public_rtmp_port = engine.rtmp.port
    node.public_media_http_port = public_media_http_port(engine.http.port)
    node.save(update_fields=["rtmp_port", "media_http_port", "public_rtmp_port", "public_media_http_port"])


def web_server_front() -> WebServerFront | None:
    """The engine's side of `make run`'s nginx in front of the media port, when the supervisor started one."""
    if not settings.ENGINE_HTTP_FRONT_TOKEN:
        return None
    log = Path(settings.ENGINE_HTTP_FRONT_LOG) if settings.ENGINE_HTTP_FRONT_LOG else None
    return WebServerFront(settings.ENGINE_HTTP_FRONT_TOKEN, log)


def public_media_http_port(listening: int) -> int:
    """The media HTTP port players use: the front's (the documented media port) when nginx fronts the engine,
    which then listens on a loopback upstream port; else the one the engine listens on."""
    return settings.ENGINE_HTTP_PORT if settings.ENGINE_HTTP_FRONT_TOKEN else listening


def media_https_host(http_host: str) -> str:
    """Where the media HTTPS port listens: beside the media HTTP port, or, when nginx fronts that port (the
    engine's HTTP then on a loopback upstream port), on the media port's public address: HTTPS stays with the
    engine and must stay reachable."""
    return settings.ENGINE_HTTP_HOST if settings.ENGINE_HTTP_FRONT_TOKEN else http_host


def edge_options(node_id: str, siblings: Locate | None = None) -> dict:
    """An edge plays the cluster's streams by pulling them from their origins on the first viewer
    (README "Origin-edge cluster"); other roles hold only what is published to them. ``siblings``:
    the edge runs as several workers, one pulls each stream for all (`DatabaseControlPlane.locate`)."""
    if settings.ENGINE_NODE_ROLE != NodeRole.EDGE:
        return {}
    try:
        from media_engine.relay.mirror import RemoteSource
    except ImportError:  # a build without mirrors: the edge refuses publishers and plays nothing
        logger.error("edge node without media_engine.relay.mirror: it cannot pull streams from origins")
        return {}
    locate = EdgeLocator(node_id, settings.ENGINE_EDGE_TRANSCODE_WAIT, source_type=RemoteSource, siblings=siblings)
    return {"locate": locate, "mirror_linger": settings.ENGINE_EDGE_LINGER}


class EngineRunner:
    def __init__(
        self,
        node_id: str,
        addresses: NodeAddresses,
        heartbeat_interval: float | None = None,
        *,
        siblings_of: str | None = None,
        ice_ports: str | None = None,
    ) -> None:
        """``siblings_of``: this is worker process ``node_id`` = ``<siblings_of>.<i>`` of `runengine
        --processes N`, sharing the public ports with its siblings (``addresses`` has private ones)."""
        self.node_id = node_id
        self.siblings_of = siblings_of
        self.ice_ports = ice_ports
        self.addresses = addresses
        self.heartbeat_interval = heartbeat_interval or settings.ENGINE_HEARTBEAT_INTERVAL
        self.stopping = asyncio.Event()
        self.engine: MediaEngineNode | None = None
        self.control: DatabaseControlPlane | None = None
        self._background: set[asyncio.Task] = set()  # certificate reloads under way

    async def run(self) -> None:
        http_port = public_media_http_port(self.addresses.http_port)  # (a worker's private one comes once it listens)
        node = await sync_to_async(register_node)(self.node_id, self.addresses.rtmp_port, http_port)
        self.control = DatabaseControlPlane(node, siblings_of=self.siblings_of)
        options = edge_options(self.node_id, self.control.locate if self.siblings_of is not None else None)
        siblings = None
        if self.siblings_of is not None:
            tag = self.node_id.removeprefix(f"{self.siblings_of}.")
            siblings = SiblingProxy(internal_job_secret(), self.control.locate, self.control.locate_worker, tag)
            # RTMP players of a sibling's stream get a mirror of it (HLS and WHEP are proxied to the holder).
            options.setdefault("locate", self.control.locate)
        self.engine = MediaEngineNode(
            self.control,
            self.addresses,
            webrtc_settings(self.ice_ports),
            siblings=siblings,
            **options,
            playlists=self.control.output_playlist,
            thumbnails=ThumbnailStore(settings.MEDIA_ROOT / "thumbnails"),  # written by transcode jobs
            limits=node_limits(),
            hls=HlsSettings(
                Path(settings.ENGINE_HLS_FILES_DIR) if settings.ENGINE_HLS_FILES_DIR else None,
                settings.ENGINE_HLS_IDLE_TIMEOUT,
                settings.ENGINE_HLS_HISTORY_SECONDS,
                settings.ENGINE_HLS_VIEWER_WINDOW,
            ),
        )
        self.relays = RelayCommands(self.engine.webrtc)  # WCS /pull/* WebRTC relays run here
        front = web_server_front()
        if front is not None:
            front.install(self.engine.http)
        await self.engine.start()
        if self.siblings_of is not None:
            await sync_to_async(record_worker_ports)(node, self.engine)
        await self.reload_certificates("*")
        tasks = [
            asyncio.create_task(self._heartbeats(node), name="heartbeats"),
            asyncio.create_task(self._commands(node), name="commands"),
        ]
        stop_requested = asyncio.create_task(self.stopping.wait(), name="stop requested")
        try:
            # The loops end only when cancelled: one that ends on its own leaves a node that looks
            # alive but is not, so the node ends too (and `make run` starts it again).
            done, _ = await asyncio.wait([stop_requested, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [stop_requested, *tasks]:
                task.cancel()
            await asyncio.gather(stop_requested, *tasks, return_exceptions=True)
            await self.engine.stop()
            with contextlib.suppress(Exception):  # (the database may be the reason it stops)
                await sync_to_async(release_all)(node)  # other nodes may take its keys at once
        for task in tasks:
            if task in done:
                raise RuntimeError(f"the engine node's {task.get_name()} loop ended") from task.exception()

    async def _heartbeats(self, node: EngineNode) -> None:
        previous: dict[int, tuple[int, int]] = {}
        stored: dict[int, stream_services.CounterSnapshot] = {}  # what the database has, per stream
        last = last_stale_check = time.monotonic()
        # Ending the streams of silent nodes is a join over every live stream (and the other chores of
        # the cluster come with it, see `heartbeat`): a few times per node
        # timeout is enough (a node is silent only after ENGINE_NODE_TIMEOUT anyway).
        stale_check_interval = max(self.heartbeat_interval, settings.ENGINE_NODE_TIMEOUT / 3)
        # They are the cluster's, not a process's: of a node's worker processes, worker 0 does them (the
        # parent restarts it when it dies), so a node costs the database one round of them however many
        # cores it uses.
        does_chores = self.siblings_of is None or self.node_id == f"{self.siblings_of}.0"
        # A node (or worker) with no stream has nothing to count: it writes only to stay alive, as
        # often as the chores run, once it has said it holds nothing.
        last_write, wrote_idle = 0.0, False
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            now = time.monotonic()
            snapshots = []
            own: dict[int, tuple[int, int]] = {}
            for stream in self.engine.live_streams():
                stream_id = self.control.stream_ids.get(stream.key)
                if stream_id is None:
                    continue
                viewers = self.engine.http.viewers.sessions(stream)
                snapshot = snapshot_of(stream_id, stream, now - last, previous.get(stream_id), viewers)
                own[stream_id] = (snapshot.total_bytes_in, snapshot.total_bytes_out)  # (throughput: ours)
                snapshots.append(self._with_siblings_audience(stream, snapshot))
            if self.engine.siblings is not None:
                # Our RTMP players of siblings' streams (mirrors) count on the holder's row.
                mirrors = [stream for stream in self.engine.live_streams() if stream.origin is not None]
                if mirrors:
                    await report_audiences(self.engine.siblings, self.node_id, mirrors)
            previous = own
            last = now
            streams = self.engine.live_streams()  # mirrors of an edge included
            load = (len(streams), sum(stream.counters.total_connections for stream in streams))
            mirrors = self._routes()
            check_stale = does_chores and now - last_stale_check >= stale_check_interval
            idle = not snapshots and load == (0, 0) and mirrors is None and not check_stale
            if idle and wrote_idle and now - last_write < stale_check_interval:
                continue
            try:
                await sync_to_async(heartbeat)(node, snapshots, load, mirrors, stored, check_stale)
            except Exception:  # noqa: BLE001 - a database hiccup must not stop the media
                logger.exception("heartbeat failed")
                stored = {}  # not known what was stored: write everything next time
                wrote_idle = False
                continue
            last_write, wrote_idle = now, idle
            if check_stale:
                last_stale_check = now
            stored = {snapshot.stream_id: snapshot for snapshot in snapshots}

    def _routes(self) -> list[MirrorState] | None:
        """An edge's pulls from other nodes (its CDN routes), with the players its sibling workers
        serve through their mirrors of them; mirrors of a sibling's stream are no route. None: not an edge."""
        if settings.ENGINE_NODE_ROLE != NodeRole.EDGE or self.engine.remote is None:
            return None
        siblings = self.engine.siblings
        sibling_prefix = f"{self.siblings_of}." if self.siblings_of is not None else None
        pulls = []
        for info in self.engine.remote.mirrors():
            if sibling_prefix is not None and info.origin.startswith(sibling_prefix):
                continue
            if siblings is not None:
                added = siblings.audiences.viewers_added(info.key)
                info = dataclasses.replace(info, viewers=max(0, info.viewers + added))
            pulls.append(info)
        return mirror_states(pulls)

    def _with_siblings_audience(self, stream, snapshot):
        """``snapshot`` with the players that sibling workers serve through their mirrors of ``stream``."""
        if self.engine.siblings is None:
            return snapshot
        connections, bytes_out = self.engine.siblings.audiences.merged(
            stream.key, snapshot.connections, snapshot.total_bytes_out
        )
        if connections == snapshot.connections and bytes_out == snapshot.total_bytes_out:
            return snapshot
        added = sum(connections.values()) - sum(snapshot.connections.values())
        total = max(0, snapshot.total_connections + added)
        return dataclasses.replace(
            snapshot,
            connections=connections,
            total_bytes_out=bytes_out,
            total_connections=total,
            max_total_connections=max(snapshot.max_total_connections, total),
        )

    async def _commands(self, node: EngineNode) -> None:
        """Read and carry out commands until cancelled. A broken layer (Redis gone) is retried: a node
        that heartbeats must keep taking commands, or the API's stops would be ignored for good."""
        layer = get_channel_layer()
        retry = COMMAND_RETRY_FIRST
        while True:
            channel = None
            try:
                channel = await layer.new_channel()
                await layer.group_add(node.command_group, channel)
                membership = asyncio.create_task(self._keep_membership(layer, node.command_group, channel))
                try:
                    while True:
                        message = await layer.receive(channel)
                        retry = COMMAND_RETRY_FIRST
                        self.handle_command(message)
                finally:
                    membership.cancel()
                    await asyncio.gather(membership, return_exceptions=True)
            except Exception:  # noqa: BLE001 - whatever broke the layer, the node must read commands again
                logger.exception("engine command channel failed: reading commands again in %g s", retry)
                await asyncio.sleep(retry)
                retry = min(retry * 2, COMMAND_RETRY_MAX)
            finally:
                if channel is not None:
                    await self._leave(layer, node.command_group, channel)

    @staticmethod
    async def _leave(layer, group: str, channel: str) -> None:
        try:
            await asyncio.wait_for(layer.group_discard(group, channel), 5)
        except Exception:  # noqa: BLE001 - best effort: a broken layer cannot take it, and members expire
            logger.debug("could not leave %s", group, exc_info=True)

    @staticmethod
    async def _keep_membership(layer, group: str, channel: str) -> None:
        # The layer forgets group members after its group expiry (a day with Redis): join again well before.
        while True:
            await asyncio.sleep(COMMAND_GROUP_REFRESH)
            try:
                await layer.group_add(group, channel)
            except Exception:  # noqa: BLE001 - tried again next time; a broken layer also fails receive()
                logger.warning("could not renew the membership of %s", group, exc_info=True)

    def handle_command(self, message: dict) -> None:
        """Carry out one command from the API; a malformed or failing one is logged and skipped, never
        raised, so that one bad message cannot end the node's command loop."""
        try:
            command = parse_command(message)
        except BadCommand as error:
            logger.warning("engine command refused: %s (message %.300r)", error, message)
            return
        try:
            self._carry_out(command)
        except Exception:  # noqa: BLE001 - one failing command must not stop the ones after it
            logger.exception("engine command %s failed", command)

    def _carry_out(self, command: Command) -> None:
        match command:
            case StopStream():
                stopped = self.engine.stop_stream(command.key)
                logger.info("API asked to stop %s: %s", command.key, "disconnected" if stopped else "not live here")
            case SetHls():
                done = self.engine.set_hls(command.key, command.enabled)
                logger.info("API turned HLS of %s %s: %s", command.key, "on" if command.enabled else "off", done)
            case InsertTimedMetadata():
                sent = self.engine.send_timed_metadata(command.key, command.id3)
                logger.info("API sent timed metadata to %s: %s", command.key, "inserted" if sent else "not live here")
            case StartRelay() | StopRelay():
                self.relays.handle(command)
            case ReloadCertificates():
                task = asyncio.get_running_loop().create_task(self.reload_certificates(command.vhost))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def reload_certificates(self, vhost: str) -> None:
        """The vhosts' TLS settings from the database, certificate files of ``vhost`` ("*": all) reloaded."""
        try:
            entries = await sync_to_async(tls_entries)()
            failed = await self.engine.load_certificates(entries, reload=vhost)
        except Exception:  # noqa: BLE001 - a database hiccup keeps the certificates in use
            logger.exception("TLS certificates not reloaded")
            return
        logger.info("TLS certificates reloaded (%s)%s", vhost, f"; failed: {', '.join(failed)}" if failed else "")
