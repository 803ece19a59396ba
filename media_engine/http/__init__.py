"""The media HTTP server (HLS on OvenMediaEngine's paths; other modules add routes to it)."""

from media_engine.http.server import MediaHttpServer, StreamTarget

__all__ = ["MediaHttpServer", "StreamTarget"]
