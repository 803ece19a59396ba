"""Commands from the API to the engine node that has a stream, over the node's Channels group.

`apps.streams.services.request_stop` sends ``stream.stop``; this module sends the others (timed
metadata, ...). `apps.engine.runner.EngineRunner.handle_command` carries them out.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.streams.models import Stream


def _send(stream: Stream, message: dict) -> bool:
    node = stream.node
    if node is None or not node.is_alive:
        return False
    message = {
        **message,
        "vhost": stream.application.virtual_host.name,
        "app": stream.application.name,
        "stream": stream.name,
    }
    async_to_sync(get_channel_layer().group_send)(node.command_group, message)
    return True


def send_timed_metadata(stream: Stream, id3: bytes) -> bool:
    """Ask the stream's node to insert an ID3 tag into its LL-HLS and HLS output; False if no live node has it."""
    return _send(stream, {"type": "stream.timed_metadata", "id3": id3})


def send_hls_state(stream: Stream, enabled: bool) -> bool:
    """Ask the stream's node to package its HLS/LL-HLS (or to stop); False if no live node has it."""
    return _send(stream, {"type": "stream.hls", "enabled": enabled})
