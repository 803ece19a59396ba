"""Sending commands to engine nodes: the one place where the API side builds them (the command types
are declared in `media_engine.commands`) and puts them on a node's Channels group.
`apps.engine.runner.EngineRunner.handle_command` carries them out on the node.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.engine.models import EngineNode
from apps.streams.models import Stream
from media_engine.commands import (
    Command,
    InsertTimedMetadata,
    ReloadCertificates,
    SetHls,
    StartRelay,
    StopRelay,
    StopStream,
    to_message,
)


def send(node: EngineNode, command: Command) -> None:
    """Put ``command`` on ``node``'s command group (whether the node is alive is the caller's question)."""
    async_to_sync(get_channel_layer().group_send)(node.command_group, to_message(command))


# The Channels group of the API's TLS proxies (`manage.py runtlsproxy`), told about reloads as nodes are.
TLS_PROXY_GROUP = "streamhub.tls-proxy"


def send_certificate_reload(vhost: str = "*") -> None:
    """Tell every live engine node and every API TLS proxy to read the vhosts' TLS settings again and
    reload the certificate files of ``vhost`` ("*": all): the next TLS connection gets the new one."""
    command = ReloadCertificates(vhost=vhost)
    for node in EngineNode.objects.all():
        if node.is_alive:
            send(node, command)
    async_to_sync(get_channel_layer().group_send)(TLS_PROXY_GROUP, to_message(command))


def _stream_fields(stream: Stream) -> dict[str, str]:
    return {"vhost": stream.application.virtual_host.name, "app": stream.application.name, "stream": stream.name}


def _send_to_stream_node(stream: Stream, command: Command) -> bool:
    node = stream.node
    if node is None or not node.is_alive:
        return False
    send(node, command)
    return True


def send_stop(stream: Stream) -> bool:
    """Ask the stream's node to disconnect its publisher; False if no live node has it."""
    return _send_to_stream_node(stream, StopStream(**_stream_fields(stream)))


def send_timed_metadata(stream: Stream, id3: bytes) -> bool:
    """Ask the stream's node to insert an ID3 tag into its LL-HLS and HLS output; False if no live node has it."""
    return _send_to_stream_node(stream, InsertTimedMetadata(**_stream_fields(stream), id3=id3))


def send_hls_state(stream: Stream, enabled: bool) -> bool:
    """Ask the stream's node to package its HLS/LL-HLS (or to stop); False if no live node has it."""
    return _send_to_stream_node(stream, SetHls(**_stream_fields(stream), enabled=enabled))


def send_relay_start(
    node: EngineNode, relay_id: str, direction: str, url: str, vhost: str, app: str, stream: str
) -> None:
    """Ask ``node`` to run a WebRTC relay (pull from or push to ``url``) of its local stream."""
    send(node, StartRelay(vhost=vhost, app=app, stream=stream, relay_id=relay_id, direction=direction, url=url))


def send_relay_stop(node: EngineNode, relay_id: str) -> None:
    send(node, StopRelay(relay_id=relay_id))
