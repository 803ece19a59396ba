"""RTMP ingest and playback: an asyncio server that publishes into and plays from the stream registry."""

from media_engine.rtmp.server import RtmpServer
from media_engine.rtmp.session import RtmpSession

__all__ = ["RtmpServer", "RtmpSession"]
