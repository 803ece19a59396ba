"""The engine node's side of WebRTC relays: `StartRelay` and `StopRelay` commands carried out on the
node's `WebRtcService`, with every status change written back to the relay's row."""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async

from apps.webrtc_relay.choices import Direction, RelayStatus
from apps.webrtc_relay.services import record_status
from media_engine.commands import StartRelay, StopRelay
from media_engine.registry import StreamAlreadyLive
from media_engine.webrtc.service import WebRtcService

logger = logging.getLogger(__name__)


class RelayCommands:
    """Runs the relay commands of one engine node as tasks of its event loop."""

    def __init__(self, webrtc: WebRtcService) -> None:
        self.webrtc = webrtc
        self._tasks: set[asyncio.Task] = set()

    def handle(self, command: StartRelay | StopRelay) -> None:
        coroutine = self._start(command) if isinstance(command, StartRelay) else self._stop(command)
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _report(self, relay_id: str, status: str, error: str = "") -> None:
        task = asyncio.get_running_loop().create_task(sync_to_async(record_status)(relay_id, status, error))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, command: StartRelay) -> None:
        relay_id = command.relay_id
        start = self.webrtc.start_pull if command.direction == Direction.PULL else self.webrtc.start_push

        def report(relay, status, error) -> None:
            self._report(relay.id, status.value, error)

        try:
            await start(relay_id, command.key, command.url, report)
        except StreamAlreadyLive:
            self._report(relay_id, RelayStatus.FAILED, "the local stream is already live")
        except LookupError:
            self._report(relay_id, RelayStatus.FAILED, "the local stream is not live on this node")
        except (ConnectionError, ValueError, TimeoutError, OSError) as error:
            logger.info("webrtc relay %s failed to start: %s", relay_id, error)
            self._report(relay_id, RelayStatus.FAILED, str(error))

    async def _stop(self, command: StopRelay) -> None:
        await self.webrtc.stop_relay(command.relay_id)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
