"""Connections: clients connected to the events WebSocket, which WCS's /connection/*, /data/send and /logger/* reach."""

from django.apps import AppConfig


class ConnectionsConfig(AppConfig):
    name = "apps.connections"
    verbose_name = "Connected clients"
