"""The events WebSocket (/ws/events/) as a connected client: the stream events of apps.streams, plus
a Connection row while the socket is open, so that WCS's /connection/*, /data/send and /logger/*
can find the client and reach it. Query parameters ``appKey`` and ``clientVersion`` describe it;
the first message tells the client its ``sessionId``."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from apps.connections.models import Connection
from apps.connections.services import session_id_of
from apps.streams.consumers import StreamEventsConsumer


class ClientConsumer(StreamEventsConsumer):
    connection_pk: int | None = None

    async def connect(self) -> None:
        await super().connect()
        if not self.authorized:
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        headers = dict(self.scope.get("headers", []))
        connection = await database_sync_to_async(Connection.objects.create)(
            session_id=session_id_of(self.scope),
            channel_name=self.channel_name,
            app_key=query.get("appKey", [""])[0][:100],
            client_version=query.get("clientVersion", [""])[0][:100],
            user_agent=headers.get(b"user-agent", b"").decode("latin-1")[:300],
        )
        self.connection_pk = connection.pk
        await self.send_json({"event": "connected", "sessionId": connection.session_id})

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        if self.connection_pk is not None:
            await database_sync_to_async(Connection.objects.filter(pk=self.connection_pk).delete)()

    async def client_data(self, message: dict) -> None:
        await self.send_json({"event": "data", "operationId": message["operationId"], "payload": message["payload"]})

    async def client_log_level(self, message: dict) -> None:
        await self.send_json({"event": "logLevel", "logLevel": message["logLevel"]})

    async def client_disconnect(self, message: dict) -> None:
        await self.close(code=4000)
