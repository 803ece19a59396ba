"""A web server in front of the media HTTP port (`make run`'s nginx, scripts/media_front.py): what the engine
needs to know of it.

- The client: nginx hands every request over from loopback; it says who asked in ``X-Real-IP`` and
  ``X-Real-Port``, which the engine believes only beside the front's token (``X-StreamHub-Front``, a secret
  the supervisor gives nginx and the engine, never the players), so admission, viewer sessions and WHIP/WHEP
  see the viewer's address, never nginx's.
- The viewers nginx answers from its cache never reach the engine, so nginx writes those answers to a
  buffered access log (``streamhub_viewers`` format: address, host, path, status, body bytes, User-Agent,
  tab-separated) that `FrontViewerLog` tails once a second; the media server counts them as if it had
  answered them (`MediaHttpServer.account_cached_answers`): viewer sessions and bytes sent. Identical lines
  (one client fetching the same file again) are counted once each but parsed once.

This module knows no Django: the runner hands it the token and the log's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from media_engine.http.siblings import as_client

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-StreamHub-Front"
ADDRESS_HEADER = "X-Real-IP"
PORT_HEADER = "X-Real-Port"
LOG_POLL_INTERVAL = 1.0  # seconds; nginx flushes the log's buffer at least this often (flush=1s)
MAX_READ = 16 * 1024 * 1024  # bytes of log read per poll (the rest waits for the next one)


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """One line of the front's viewer log: an answer nginx gave from its cache."""

    address: str
    host: str
    path: str
    status: int
    nbytes: int
    user_agent: str

    @classmethod
    def parse(cls, line: bytes) -> CachedAnswer | None:
        try:
            address, host, path, status, nbytes, user_agent = line.decode("utf-8", "replace").split("\t")
            return cls(address, host, path, int(status), int(nbytes), "" if user_agent == "-" else user_agent)
        except ValueError:
            return None


class FrontViewerLog:
    """Tails the front's viewer log: new complete lines since the last `read_lines`, across the supervisor's
    rotations (the file renamed and reopened by nginx: the old one is read to its end first)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = None
        self._rest = b""
        self._first_open = True  # what was logged before this engine started is not ours to count

    def _open(self, at_end: bool) -> None:
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - kept open across polls
        except OSError:
            self._file = None
            return
        if at_end:
            self._file.seek(0, os.SEEK_END)

    def read_lines(self) -> list[bytes]:
        if self._file is None:
            self._open(at_end=self._first_open)
            self._first_open = False
            if self._file is None:
                return []
        data = self._file.read(MAX_READ)
        if len(data) < MAX_READ and self._rotated():
            data += self._file.read(MAX_READ)  # the end of the old file (written since), then the new one
            self._file.close()
            self._open(at_end=False)
            if self._file is not None:
                data += self._file.read(MAX_READ)
        data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        return lines

    def _rotated(self) -> bool:
        try:
            return os.stat(self.path).st_ino != os.fstat(self._file.fileno()).st_ino
        except OSError:
            return False  # (renamed and not reopened yet: the new file comes with the next poll)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class WebServerFront:
    """The engine's side of the front: the trusted client middleware and the viewer log's reader."""

    def __init__(self, token: str, viewer_log: Path | None = None) -> None:
        if not token:
            raise ValueError("the front needs a token")
        self.token = token
        self.log = FrontViewerLog(viewer_log) if viewer_log is not None else None
        self.cached_answers = 0  # lines of the viewer log counted, since start
        self._server = None
        self._reader: asyncio.Task[None] | None = None

    def install(self, server) -> None:
        """Before ``server`` (a `MediaHttpServer`) starts: the middleware first of all (a sibling proxy signs
        the viewer's address, not nginx's), the log's reader while it runs."""
        self._server = server
        server.app.middlewares.insert(0, self.middleware)
        if self.log is not None:
            server.app.on_startup.append(self._start_reader)
            server.app.on_cleanup.append(self._stop_reader)

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        token = request.headers.get(TOKEN_HEADER)
        if token is None:
            return await handler(request)
        address = request.headers.get(ADDRESS_HEADER, "")
        if not hmac.compare_digest(token.encode(), self.token.encode()) or not address:
            logger.info("media HTTP: %s without the front's token from %s ignored", ADDRESS_HEADER, request.remote)
            return await handler(request)
        try:
            port = int(request.headers.get(PORT_HEADER, "0"))
        except ValueError:
            port = 0
        return await handler(as_client(request, address, port))

    async def _start_reader(self, _app) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read_log(), name="front viewer log")

    async def _stop_reader(self, _app) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self.log.close()

    async def _read_log(self) -> None:
        while True:
            await asyncio.sleep(LOG_POLL_INTERVAL)
            try:
                await self.account(self.log.read_lines())
            except Exception:  # noqa: BLE001 - a bad batch is dropped; counting goes on with the next one
                logger.exception("reading the front's viewer log %s failed", self.log.path)

    async def account(self, lines: list[bytes]) -> None:
        """Count ``lines`` of the viewer log as answers of this server (identical lines parsed once)."""
        answers = [(answer, times) for line, times in Counter(lines).items() if (answer := CachedAnswer.parse(line))]
        await self._server.account_cached_answers(answers)
        self.cached_answers += sum(times for _, times in answers)
