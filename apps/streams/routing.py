"""WebSocket routes of the streams app."""

from django.urls import path

from apps.streams.consumers import StreamEventsConsumer

websocket_urlpatterns = [path("ws/events/", StreamEventsConsumer.as_asgi())]
