"""Rate-limited logging of repeated errors: the event loop's unhandled ones (accept() failing with
EMFILE above all) and repeated tracebacks of the engine process.

When the process runs out of file descriptors, asyncio's accept loop reports
``socket.accept() out of system resource`` for every pending connection of every listener, about a
thousand tracebacks a second, and keeps retrying (it serves again once descriptors free up); every
heartbeat and Redis publish fails with a traceback too. Logged as they come, that was 40 MB of
identical tracebacks in 40 s. `RateLimitedErrors` (the loop's exception handler) and
`RepeatedTracebacks` (a logging filter) log the first of a kind with its traceback, then at most one
line per ``interval`` with the count of the ones left out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 10.0
MAX_KINDS = 256  # distinct kinds remembered; beyond it the oldest are forgotten


class RateLimitedErrors:
    """An event loop exception handler that logs each kind of error at most once per ``interval``."""

    def __init__(self, interval: float = DEFAULT_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.suppressed = 0  # errors left out of the log since start
        self._kinds: dict[tuple, list] = {}  # kind -> [last logged at, left out since]

    @staticmethod
    def _kind(context: dict[str, Any]) -> tuple:
        exc = context.get("exception")
        return (context.get("message"), type(exc).__name__ if exc is not None else None, getattr(exc, "errno", None))

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        kind = self._kind(context)
        now = self.clock()
        entry = self._kinds.get(kind)
        if entry is not None and now - entry[0] < self.interval:
            entry[1] += 1
            self.suppressed += 1
            return
        if entry is None:
            if len(self._kinds) >= MAX_KINDS:
                del self._kinds[next(iter(self._kinds))]
            self._kinds[kind] = [now, 0]
            loop.default_exception_handler(context)  # the first of its kind, traceback and all
            return
        left_out, entry[:] = entry[1], [now, 0]
        exc = context.get("exception")
        logger.error(
            "%s%s (again; %d more like it in the last %.0fs not logged)",
            context.get("message", "unhandled error in the event loop"),
            f": {exc!r}" if exc is not None else "",
            left_out,
            self.interval,
        )


class RepeatedTracebacks(logging.Filter):
    """A handler filter: a record with a traceback whose kind (logger, message template, exception
    type) was logged less than ``interval`` seconds ago is dropped and counted; the next one after
    the interval says how many were left out. Records without a traceback all pass."""

    def __init__(self, interval: float = DEFAULT_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self.suppressed = 0
        self._kinds: dict[tuple, list] = {}  # kind -> [last logged at, left out since]

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[0] is None:
            return True
        kind = (record.name, record.msg, record.exc_info[0])
        now = self.clock()
        entry = self._kinds.get(kind)
        if entry is None:
            if len(self._kinds) >= MAX_KINDS:
                del self._kinds[next(iter(self._kinds))]
            self._kinds[kind] = [now, 0]
            return True
        if now - entry[0] < self.interval:
            entry[1] += 1
            self.suppressed += 1
            return False
        if entry[1]:
            # Said once with its traceback already: now one line with the count.
            note = (
                f" (again: {record.exc_info[1]!r}; {entry[1]} more like it in the last {self.interval:.0f}s not logged)"
            )
            record.msg = f"{record.msg}{note.replace('%', '%%') if record.args else note}"
            record.exc_info = None
            record.exc_text = None
        entry[:] = [now, 0]
        return True


def limit_repeated_tracebacks(interval: float = DEFAULT_INTERVAL) -> RepeatedTracebacks:
    """Add a `RepeatedTracebacks` filter to every handler of the root logger (the engine process's)."""
    repeated = RepeatedTracebacks(interval)
    for handler in logging.getLogger().handlers:
        handler.addFilter(repeated)
    return repeated


def install(loop: asyncio.AbstractEventLoop, interval: float = DEFAULT_INTERVAL) -> RateLimitedErrors | None:
    """Make ``loop`` log its unhandled errors through a `RateLimitedErrors` (unless it has a handler)."""
    if loop.get_exception_handler() is not None:
        return None
    handler = RateLimitedErrors(interval)
    loop.set_exception_handler(handler)
    return handler
