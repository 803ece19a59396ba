"""One media engine node: the stream registry with its RTMP server, HLS and LL-HLS packagers and media HTTP server.

`EngineNode` assembles the parts and forwards stream start/end to the control plane; the Django
command `runengine` adds heartbeats, counters in the database and API commands around it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from media_engine.control import ControlPlane
from media_engine.hls.llhls import LlHlsPackager
from media_engine.hls.segmenter import HlsPackager
from media_engine.http.server import MediaHttpServer
from media_engine.registry import LiveStream, StreamKey, StreamRegistry
from media_engine.rtmp.server import RtmpServer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeAddresses:
    rtmp_host: str = "0.0.0.0"
    rtmp_port: int = 1935
    http_host: str = "0.0.0.0"
    http_port: int = 3333


class EngineNode:
    def __init__(self, control: ControlPlane, addresses: NodeAddresses | None = None) -> None:
        addresses = addresses or NodeAddresses()
        self.control = control
        self.registry = StreamRegistry()
        self.rtmp = RtmpServer(self.registry, control, host=addresses.rtmp_host, port=addresses.rtmp_port)
        self.packager = HlsPackager.for_control_plane(self.registry, control)
        self.llhls = LlHlsPackager.for_control_plane(self.registry, control)
        self.http = MediaHttpServer(
            self.registry, control, self.packager, host=addresses.http_host, port=addresses.http_port, llhls=self.llhls
        )
        self._event_tasks: set[asyncio.Task] = set()
        self.registry.on_started(lambda stream: self._notify(control.stream_started(stream)))
        self.registry.on_ended(lambda stream: self._notify(control.stream_ended(stream)))

    def _notify(self, coroutine) -> None:
        # Registry listeners are synchronous; the control plane's answers are awaited in the background.
        task = asyncio.get_running_loop().create_task(coroutine)
        self._event_tasks.add(task)
        task.add_done_callback(self._event_done)

    def _event_done(self, task: asyncio.Task) -> None:
        self._event_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("control plane event failed", exc_info=task.exception())

    async def start(self) -> None:
        self.packager.attach()
        self.llhls.attach()
        await self.rtmp.start()
        await self.http.start()
        logger.info("engine node up: RTMP on %s, media HTTP on %s", self.rtmp.port, self.http.port)

    async def stop(self) -> None:
        await self.rtmp.stop()
        await self.http.stop()
        await self.packager.close()
        await self.llhls.close()
        if self._event_tasks:
            await asyncio.gather(*self._event_tasks, return_exceptions=True)

    def stop_stream(self, key: StreamKey) -> bool:
        """Disconnect the publisher of ``key``; False if it is not live here."""
        stream = self.registry.get(key)
        if stream is None:
            return False
        stream.stop()
        return True

    def send_timed_metadata(self, key: StreamKey, id3: bytes) -> bool:
        """Insert an ID3 tag into the LL-HLS (next part) and HLS (next packet) output of ``key``.

        False if the stream is not live here. Both outputs are one muxed rendition, so OME's
        ``eventType`` (event, video, audio) lands in the same place whatever it says.
        """
        if self.registry.get(key) is None:
            return False
        for packager in (self.llhls, self.packager):
            segmenter = packager.get(key)
            if segmenter is not None:
                segmenter.add_timed_metadata(id3)
        return True

    def live_streams(self) -> list[LiveStream]:
        return self.registry.streams()
