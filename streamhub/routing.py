"""WebSocket routes: /ws/events/ (stream events; the socket is also a connected client that WCS's
/connection/*, /data/send and /logger/* reach)."""

from django.urls import path

from apps.connections.consumers import ClientConsumer

websocket_urlpatterns = [path("ws/events/", ClientConsumer.as_asgi())]
