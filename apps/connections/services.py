"""Connected clients: register and forget sockets, find them, and send them data, log levels or a
disconnect over the Channels layer (whichever API server process holds the socket)."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.connections.models import Connection

# WCS client log levels.
LOG_LEVELS = ("ERROR", "WARN", "INFO", "DEBUG", "TRACE")


def session_id_of(scope: dict) -> str:
    client = scope.get("client") or ("unknown", 0)
    server = scope.get("server") or ("unknown", 0)
    return f"/{client[0]}:{client[1]}/{server[0]}:{server[1]}"


def find(app_key: str = "", session_id: str = "", client_version: str = ""):
    connections = Connection.objects.all()
    if app_key:
        connections = connections.filter(app_key=app_key)
    if session_id:
        connections = connections.filter(session_id=session_id)
    if client_version:
        connections = connections.filter(client_version=client_version)
    return connections


def _send(connection: Connection, message: dict) -> None:
    async_to_sync(get_channel_layer().send)(connection.channel_name, message)


def send_data(connection: Connection, payload, operation_id: str = "") -> None:
    _send(connection, {"type": "client.data", "operationId": operation_id, "payload": payload})


def set_log_level(connection: Connection, level: str) -> None:
    """``level`` one of LOG_LEVELS, or "" to switch the client's log off."""
    connection.log_level = level
    connection.save(update_fields=["log_level"])
    _send(connection, {"type": "client.log_level", "logLevel": level or "OFF"})


def disconnect(connection: Connection) -> None:
    _send(connection, {"type": "client.disconnect"})
    connection.delete()
