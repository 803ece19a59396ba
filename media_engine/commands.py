"""The commands the control plane sends an engine node (stop a stream, HLS on/off, timed metadata,
WebRTC relays, TLS certificate reloads), declared once as dataclasses: `to_message` is the only way
to put one on the wire and `parse_command` the only way to read one back, refusing anything malformed with `BadCommand`.

The wire form is a flat dict with a ``type`` (the command's `TYPE`) and the command's fields, as a
Channels layer carries it; ``id3`` travels as bytes (the Redis layer packs with msgpack).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, get_type_hints

from media_engine.registry import StreamKey

RELAY_DIRECTIONS = ("pull", "push")


class BadCommand(ValueError):
    """A message that is not a command this node knows, or not one it can carry out as sent."""


@dataclass(frozen=True)
class StreamCommand:
    """A command about one stream of the node."""

    TYPE: ClassVar[str]
    vhost: str
    app: str
    stream: str

    @property
    def key(self) -> StreamKey:
        return StreamKey(self.vhost, self.app, self.stream)


@dataclass(frozen=True)
class StopStream(StreamCommand):
    """Disconnect the stream's publisher (the API's DELETE of a stream)."""

    TYPE: ClassVar[str] = "stream.stop"


@dataclass(frozen=True)
class SetHls(StreamCommand):
    """Package the stream's HLS and LL-HLS, or stop doing so (WCS /hls/startup, /hls/terminate)."""

    TYPE: ClassVar[str] = "stream.hls"
    enabled: bool


@dataclass(frozen=True)
class InsertTimedMetadata(StreamCommand):
    """Insert an ID3 tag into the stream's HLS and LL-HLS output (OME's :sendEvent)."""

    TYPE: ClassVar[str] = "stream.timed_metadata"
    id3: bytes


@dataclass(frozen=True)
class StartRelay(StreamCommand):
    """Pull another node's WHEP ``url`` into the local stream, or push the local stream to a WHIP ``url``."""

    TYPE: ClassVar[str] = "webrtc.relay.start"
    relay_id: str
    direction: str  # one of RELAY_DIRECTIONS
    url: str

    def __post_init__(self) -> None:
        if self.direction not in RELAY_DIRECTIONS:
            raise BadCommand(f"relay direction must be one of {', '.join(RELAY_DIRECTIONS)}, not {self.direction!r}")


@dataclass(frozen=True)
class StopRelay:
    """End a WebRTC relay of the node."""

    TYPE: ClassVar[str] = "webrtc.relay.stop"
    relay_id: str


@dataclass(frozen=True)
class ReloadCertificates:
    """Read the vhosts' TLS settings again and reload the certificate files of ``vhost`` ("*": all)
    for the HTTPS port (OME's :reloadCertificate, :reloadAllCertificates)."""

    TYPE: ClassVar[str] = "tls.reload"
    vhost: str


Command = StopStream | SetHls | InsertTimedMetadata | StartRelay | StopRelay | ReloadCertificates
COMMANDS: dict[str, type[Command]] = {kind.TYPE: kind for kind in Command.__args__}
# Field name -> type, per command (the hints are strings under `from __future__ import annotations`).
_FIELDS = {kind: get_type_hints(kind) for kind in COMMANDS.values()}


def to_message(command: Command) -> dict[str, Any]:
    """The wire form of ``command`` (a Channels message)."""
    return {"type": command.TYPE, **dataclasses.asdict(command)}


def parse_command(message: Any) -> Command:
    """The command a received message carries; `BadCommand` says what is wrong with it."""
    if not isinstance(message, dict):
        raise BadCommand(f"a command is a dict, not {type(message).__name__}")
    kind = COMMANDS.get(message.get("type")) if isinstance(message.get("type"), str) else None
    if kind is None:
        raise BadCommand(f"unknown command type {message.get('type')!r}")
    values = {}
    for field in dataclasses.fields(kind):
        if field.name not in message:
            raise BadCommand(f"{kind.TYPE}: {field.name} is missing")
        value, expected = message[field.name], _FIELDS[kind][field.name]
        # isinstance is exact enough: nothing subclasses bool, and True is no str or bytes.
        if not isinstance(value, expected):
            raise BadCommand(f"{kind.TYPE}: {field.name} must be {expected.__name__}, not {type(value).__name__}")
        if expected is str and not value:
            raise BadCommand(f"{kind.TYPE}: {field.name} is empty")
        values[field.name] = value
    return kind(**values)
