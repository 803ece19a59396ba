"""/ws/events/: stream started/ended events as JSON, for signed-in staff or OME API token holders;
with ``?stats=1`` also every engine heartbeat's per-stream numbers (the admin's live dashboard)."""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from apps.streams.services import STREAM_EVENTS_GROUP

# Engine heartbeats' stream numbers ("stats" events, see apps.dashboard.services): only sockets
# that ask with ?stats=1 join, so other clients see started/ended events alone.
STREAM_STATS_GROUP = "stream-stats"


def has_api_token(scope) -> bool:
    """The OME API credentials (`Authorization: Basic base64(token)`) also open the events socket."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() != "basic" or not settings.OME_ACCESS_TOKEN:
                return False
            try:
                token = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(token, settings.OME_ACCESS_TOKEN.encode())
    return False


def wants_stats(scope) -> bool:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return query.get("stats", [""])[0] in ("1", "true")


class StreamEventsConsumer(AsyncJsonWebsocketConsumer):
    groups = []  # joined only after authentication
    authorized = False
    stats = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not ((user is not None and user.is_authenticated and user.is_staff) or has_api_token(self.scope)):
            await self.close(code=4401)
            return
        self.authorized = True
        await self.channel_layer.group_add(STREAM_EVENTS_GROUP, self.channel_name)
        if wants_stats(self.scope):
            self.stats = True
            await self.channel_layer.group_add(STREAM_STATS_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(STREAM_EVENTS_GROUP, self.channel_name)
        if self.stats:
            await self.channel_layer.group_discard(STREAM_STATS_GROUP, self.channel_name)

    async def stream_event(self, message: dict) -> None:
        body = {"event": message["event"], "stream": message["stream"]}
        if "payload" in message:
            body["payload"] = message["payload"]  # data sent to the stream's subscribers (WCS /stream/event/send)
        await self.send_json(body)

    async def stream_stats(self, message: dict) -> None:
        await self.send_json(
            {"event": "stats", "node": message["node"], "time": message["time"], "streams": message["streams"]}
        )
