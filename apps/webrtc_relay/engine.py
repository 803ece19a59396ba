"""The engine node's side of WebRTC relays: ``webrtc.relay.start|stop`` commands carried out on the
node's `WebRtcService`, with every status change written back to the relay's row."""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async

from apps.webrtc_relay.choices import Direction, RelayStatus
from apps.webrtc_relay.services import record_status
from media_engine.registry import StreamAlreadyLive, StreamKey
from media_engine.webrtc.service import WebRtcService

logger = logging.getLogger(__name__)
COMMANDS = ("webrtc.relay.start", "webrtc.relay.stop")


class RelayCommands:
    """Runs the relay commands of one engine node as tasks of its event loop."""

    def __init__(self, webrtc: WebRtcService) -> None:
        self.webrtc = webrtc
        self._tasks: set[asyncio.Task] = set()

    def handle(self, message: dict) -> None:
        coroutine = self._start(message) if message["type"] == "webrtc.relay.start" else self._stop(message)
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _report(self, relay_id: str, status: str, error: str = "") -> None:
        task = asyncio.get_running_loop().create_task(sync_to_async(record_status)(relay_id, status, error))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, message: dict) -> None:
        relay_id = message["relay_id"]
        key = StreamKey(message["vhost"], message["app"], message["stream"])
        start = self.webrtc.start_pull if message["direction"] == Direction.PULL else self.webrtc.start_push
        try:
            await start(
                relay_id, key, message["url"], lambda relay, status, error: self._report(relay.id, status.value, error)
            )
        except StreamAlreadyLive:
            self._report(relay_id, RelayStatus.FAILED, "the local stream is already live")
        except LookupError:
            self._report(relay_id, RelayStatus.FAILED, "the local stream is not live on this node")
        except (ConnectionError, ValueError, TimeoutError, OSError) as error:
            logger.info("webrtc relay %s failed to start: %s", relay_id, error)
            self._report(relay_id, RelayStatus.FAILED, str(error))

    async def _stop(self, message: dict) -> None:
        await self.webrtc.stop_relay(message["relay_id"])

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
