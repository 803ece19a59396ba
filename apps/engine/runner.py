"""The Django shell around one media engine node: registers the node, heartbeats (with every live
stream's counters), ends streams of silent nodes, and carries out API commands from the Channels layer.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from apps.engine.control_plane import DatabaseControlPlane, snapshot_of
from apps.engine.models import EngineNode
from apps.engine.signals import node_heartbeat
from apps.streams import services as stream_services
from apps.streams.models import Stream
from apps.webrtc_relay.engine import COMMANDS as RELAY_COMMANDS
from apps.webrtc_relay.engine import RelayCommands
from apps.webrtc_relay.services import end_relays_of_node
from media_engine.jobs.thumbnail import ThumbnailStore
from media_engine.node import EngineNode as MediaEngineNode
from media_engine.node import HlsSettings, NodeAddresses
from media_engine.registry import StreamKey
from media_engine.webrtc.ice import policy_from_settings
from media_engine.webrtc.service import WebRtcSettings

logger = logging.getLogger(__name__)


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
        },
    )
    # Streams this node had before a crash or restart are not live any more.
    for stream in Stream.objects.live().filter(node=node).select_related("application__virtual_host", "node"):
        stream.end()
        stream_services.publish_event("ended", stream)
    end_relays_of_node(node)
    return node


def heartbeat(node: EngineNode, snapshots: list) -> None:
    EngineNode.objects.filter(pk=node.pk).update(last_heartbeat=timezone.now())
    stream_services.record_counters(snapshots)
    stream_services.end_streams_of_stale_nodes()
    node_heartbeat.send_robust(sender=EngineNode, node=node, snapshots=snapshots)


def webrtc_settings() -> WebRtcSettings:
    """The node's WebRTC settings (ICE addresses, port range, STUN/TURN) from Django's settings."""
    policy = policy_from_settings(
        settings.WEBRTC_ICE_ADDRESSES,
        settings.WEBRTC_ICE_PORTS,
        settings.WEBRTC_ICE_SERVERS,
        settings.WEBRTC_TURN_USERNAME,
        settings.WEBRTC_TURN_CREDENTIAL,
    )
    return WebRtcSettings(ice=policy, keyframe_interval=settings.WEBRTC_KEYFRAME_INTERVAL)


class EngineRunner:
    def __init__(self, node_id: str, addresses: NodeAddresses, heartbeat_interval: float | None = None) -> None:
        self.node_id = node_id
        self.addresses = addresses
        self.heartbeat_interval = heartbeat_interval or settings.ENGINE_HEARTBEAT_INTERVAL
        self.stopping = asyncio.Event()
        self.engine: MediaEngineNode | None = None
        self.control: DatabaseControlPlane | None = None

    async def run(self) -> None:
        node = await sync_to_async(register_node)(self.node_id, self.addresses.rtmp_port, self.addresses.http_port)
        self.control = DatabaseControlPlane(node)
        self.engine = MediaEngineNode(
            self.control,
            self.addresses,
            webrtc_settings(),
            playlists=self.control.output_playlist,
            thumbnails=ThumbnailStore(settings.MEDIA_ROOT / "thumbnails"),  # written by transcode jobs
            hls=HlsSettings(
                Path(settings.ENGINE_HLS_FILES_DIR) if settings.ENGINE_HLS_FILES_DIR else None,
                settings.ENGINE_HLS_IDLE_TIMEOUT,
                settings.ENGINE_HLS_HISTORY_SECONDS,
            ),
        )
        self.relays = RelayCommands(self.engine.webrtc)  # WCS /pull/* WebRTC relays run here
        await self.engine.start()
        tasks = [
            asyncio.create_task(self._heartbeats(node), name="heartbeats"),
            asyncio.create_task(self._commands(node), name="commands"),
        ]
        try:
            await self.stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.engine.stop()

    async def _heartbeats(self, node: EngineNode) -> None:
        previous: dict[int, tuple[int, int]] = {}
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            now = time.monotonic()
            snapshots = []
            for stream in self.engine.live_streams():
                stream_id = self.control.stream_ids.get(stream.key)
                if stream_id is None:
                    continue
                snapshots.append(snapshot_of(stream_id, stream, now - last, previous.get(stream_id)))
            previous = {s.stream_id: (s.total_bytes_in, s.total_bytes_out) for s in snapshots}
            last = now
            try:
                await sync_to_async(heartbeat)(node, snapshots)
            except Exception:  # noqa: BLE001 - a database hiccup must not stop the media
                logger.exception("heartbeat failed")

    async def _commands(self, node: EngineNode) -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(node.command_group, channel)
        try:
            while True:
                message = await layer.receive(channel)
                self.handle_command(message)
        finally:
            await layer.group_discard(node.command_group, channel)

    def handle_command(self, message: dict) -> None:
        if message.get("type") == "stream.stop":
            key = StreamKey(message["vhost"], message["app"], message["stream"])
            stopped = self.engine.stop_stream(key)
            logger.info("API asked to stop %s: %s", key, "disconnected" if stopped else "not live here")
        elif message.get("type") in RELAY_COMMANDS:
            self.relays.handle(message)
        elif message.get("type") == "stream.hls":
            key = StreamKey(message["vhost"], message["app"], message["stream"])
            done = self.engine.set_hls(key, bool(message["enabled"]))
            logger.info("API turned HLS of %s %s: %s", key, "on" if message["enabled"] else "off", done)
        elif message.get("type") == "stream.timed_metadata":
            key = StreamKey(message["vhost"], message["app"], message["stream"])
            sent = self.engine.send_timed_metadata(key, bytes(message["id3"]))
            logger.info("API sent timed metadata to %s: %s", key, "inserted" if sent else "not live here")
        else:
            logger.warning("unknown engine command %r", message.get("type"))
