"""WCS /connection/*, /data/send and /logger/*: clients connected to the events WebSocket, on the
connections service."""

from __future__ import annotations

from rest_framework import serializers

from apps.api_wcs.errors import WcsError
from apps.api_wcs.views.base import Method, found
from apps.connections import services as connections
from apps.connections.models import Connection
from apps.security.parsers import PayloadField


class ConnectionFilter(serializers.Serializer):
    appKey = serializers.CharField(required=False)
    sessionId = serializers.CharField(required=False)
    clientVersion = serializers.CharField(required=False)


class SessionId(serializers.Serializer):
    sessionId = serializers.CharField()


class DataSend(SessionId):
    nodeId = serializers.CharField(required=False, help_text="Accepted; every API server reaches every client.")
    operationId = serializers.CharField(required=False, allow_blank=True, default="")
    payload = PayloadField(help_text="Any JSON, delivered as it is (at most WCS_MAX_EVENT_PAYLOAD_BYTES).")


class EnableClientLog(SessionId):
    logLevel = serializers.ChoiceField(connections.LOG_LEVELS)


class ConnectionObject(serializers.Serializer):
    sessionId = serializers.CharField()
    appKey = serializers.CharField()
    clientVersion = serializers.CharField()
    userAgent = serializers.CharField()
    logLevel = serializers.CharField()
    connectedTime = serializers.IntegerField(help_text="ms since the epoch")


def connection_to_wcs(connection: Connection) -> dict:
    return {
        "sessionId": connection.session_id,
        "appKey": connection.app_key,
        "clientVersion": connection.client_version,
        "userAgent": connection.user_agent,
        "logLevel": connection.log_level or "OFF",
        "connectedTime": int(connection.connected_at.timestamp() * 1000),
    }


def connection_of(data: dict, not_found: str) -> Connection:
    connection = Connection.objects.filter(session_id=data["sessionId"]).first()
    if connection is None:
        raise WcsError(404, not_found)
    return connection


def find_all(data: dict) -> list[dict]:
    return found([connection_to_wcs(c) for c in connections.find()], "No connections found")


def find(data: dict) -> list[dict]:
    matched = connections.find(data.get("appKey", ""), data.get("sessionId", ""), data.get("clientVersion", ""))
    return found([connection_to_wcs(c) for c in matched], "Not found")


def terminate(data: dict) -> None:
    connections.disconnect(connection_of(data, "No such connection"))


def send(data: dict) -> None:
    connection = Connection.objects.filter(session_id=data["sessionId"]).first()
    if connection is None:
        # The table lists only 500 for /data/send.
        raise WcsError(500, "Internal error: no such connection")
    connections.send_data(connection, data["payload"], data["operationId"])


def enable_log(data: dict) -> None:
    connections.set_log_level(connection_of(data, "Session not found"), data["logLevel"])


def disable_log(data: dict) -> None:
    connections.set_log_level(connection_of(data, "Session not found"), "")


METHODS = [
    Method("connection", "find_all", find_all, response=ConnectionObject(many=True), summary="Find all connections",
           errors=((404, "No connections found"),)),
    Method("connection", "find", find, ConnectionFilter, ConnectionObject(many=True), "Find connections by filter",
           ((404, "Not found"),)),
    Method("connection", "terminate", terminate, SessionId, None, "Disconnect a connected client",
           ((404, "No such connection"), (500, "Internal error"))),
    Method("data", "send", send, DataSend, None, "Send data to a connected client", ((500, "Internal error"),)),
    Method("logger", "enable_client_log", enable_log, EnableClientLog, None, "Set a client's log level",
           ((404, "Session not found"),)),
    Method("logger", "disable_client_log", disable_log, SessionId, None, "Switch a client's log off",
           ((404, "Session not found"),)),
]  # fmt: skip
