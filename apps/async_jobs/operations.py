"""What a job does, by method: the registry of operations that API packages fill in at start-up.

An operation starts the work in a worker (``start``); when that leaves something running that is
not done yet (a pull connecting), it names what it started (``handle``) and the event key it waits
for (``watch``); each event on that key asks ``check`` whether the job is done; ``stop`` undoes
what it started when the job is cancelled. Nothing here polls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


class JobFailed(Exception):
    """The job failed the way its API call would: ``status`` and ``message`` (e.g. 404, "Stream not found")."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Started:
    """What ``start`` did: done (``result``) unless it waits for events on ``watch`` about ``handle``."""

    result: object = None
    handle: dict = field(default_factory=dict)
    watch: str = ""

    @property
    def done(self) -> bool:
        return not self.watch


@dataclass(frozen=True)
class Done:
    result: object = None


def _already_done(request: dict, handle: dict) -> Done:
    return Done(handle.get("result"))


def _nothing_to_stop(request: dict, handle: dict) -> None:
    return None


@dataclass(frozen=True)
class Operation:
    start: Callable[[dict], Started]
    # Done, None (not yet), or raises JobFailed.
    check: Callable[[dict, dict], Done | None] = _already_done
    stop: Callable[[dict, dict], None] = _nothing_to_stop


OPERATIONS: dict[str, Operation] = {}


def register_operation(method: str, operation: Operation) -> None:
    OPERATIONS[method] = operation


def operation_for(method: str) -> Operation:
    try:
        return OPERATIONS[method]
    except KeyError:
        raise JobFailed(500, f"Internal error: no operation {method} on this worker") from None
