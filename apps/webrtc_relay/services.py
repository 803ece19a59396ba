"""Starting and ending WebRTC relays: a row, then a command to the engine node that runs it
(``webrtc.relay.start`` / ``webrtc.relay.stop``, carried out by `apps.engine.runner`), which reports
the relay's status back with `record_status`."""

from __future__ import annotations

from django.db import transaction

from apps.engine import commands
from apps.engine.models import EngineNode
from apps.hosting.models import Application
from apps.security.outbound import check_outbound_url
from apps.streams.models import Stream
from apps.webrtc_relay.choices import Direction, RelayStatus
from apps.webrtc_relay.models import WebRtcRelay, signalling_target
from media_engine.webrtc.relay import signalling_url


class RelayRefused(Exception):
    """The relay cannot start; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _check_url(uri: str) -> None:
    try:
        signalling_url(uri, "whep")
        check_outbound_url(uri)
    except ValueError as error:
        raise RelayRefused(400, f"Bad request: {error}") from None


def _start(relay: WebRtcRelay) -> WebRtcRelay:
    commands.send_relay_start(
        relay.node,
        relay_id=relay.relay_id,
        direction=relay.direction,
        url=relay.signalling_url,
        vhost=relay.application.virtual_host.name,
        app=relay.application.name,
        stream=relay.local_stream_name,
    )
    return relay


def start_pull(application: Application, uri: str, local_name: str, remote_name: str = "") -> WebRtcRelay:
    """Pull the stream at another node's WHEP ``uri`` (``/remote_name`` appended if given) into ``local_name``."""
    _check_url(uri)
    node = EngineNode.for_new_streams()
    if node is None:
        # Not a server error: the platform works, it only has no node to run media on right now.
        raise RelayRefused(409, "Conflict: no engine node is running")
    # One relay or publisher per local name: the check and the insert in one transaction.
    with transaction.atomic():
        if Stream.objects.live().filter(application=application, name=local_name).exists():
            raise RelayRefused(409, "Conflict: the local stream is already live")
        if WebRtcRelay.objects.active().filter(application=application, local_stream_name=local_name).exists():
            raise RelayRefused(409, "Conflict: a relay of this local stream exists")
        relay = WebRtcRelay.objects.create(
            direction=Direction.PULL, application=application, node=node, uri=uri,
            local_stream_name=local_name, remote_stream_name=remote_name,
        )  # fmt: skip
    return _start(relay)


def start_push(application: Application, uri: str, local_name: str, remote_name: str = "") -> WebRtcRelay:
    """Push the live stream ``local_name`` to another node's WHIP ``uri`` (``/remote_name`` appended if given)."""
    _check_url(uri)
    stream = Stream.objects.live().filter(application=application, name=local_name).select_related("node").first()
    if stream is None or stream.node is None or not stream.node.is_alive:
        raise RelayRefused(404, "Stream not found")
    with transaction.atomic():
        target = signalling_target(uri, remote_name)
        active = WebRtcRelay.objects.active().filter(
            application=application, direction=Direction.PUSH, local_stream_name=local_name
        )
        if any(relay.signalling_url == target for relay in active):
            raise RelayRefused(409, "Conflict: this stream is already pushed to this URI")
        relay = WebRtcRelay.objects.create(
            direction=Direction.PUSH, application=application, node=stream.node, uri=uri,
            local_stream_name=local_name, remote_stream_name=remote_name,
        )  # fmt: skip
    return _start(relay)


def terminate(relay: WebRtcRelay) -> None:
    """End a relay: the engine ends its sessions (local stream of a pull, remote session of a push)."""
    if relay.node is not None and relay.node.is_alive:
        commands.send_relay_stop(relay.node, relay.relay_id)
    relay.mark(RelayStatus.STOPPED)


def record_status(relay_id: str, status: str, error: str = "") -> None:
    """The engine's report of a relay's status."""
    relay = WebRtcRelay.objects.filter(relay_id=relay_id).first()
    if relay is not None:
        relay.mark(status, error)


def end_relays_of_node(node: EngineNode) -> None:
    """A (re)starting node runs no relay: the ones it had are over."""
    for relay in WebRtcRelay.objects.active().filter(node=node):
        relay.mark(RelayStatus.FAILED, "the engine node restarted")
