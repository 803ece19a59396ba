"""WebRTC relays: streams pulled from another node's WHEP URL, and streams pushed to another node's WHIP URL."""

from django.apps import AppConfig


class WebRtcRelayConfig(AppConfig):
    name = "apps.webrtc_relay"
    verbose_name = "WebRTC relays"
