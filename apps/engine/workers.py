"""`runengine --processes N`: a small parent that runs N engine worker processes behind the same
public ports (SO_REUSEPORT), restarts a dead one with a doubling backoff, and stops them all on
SIGTERM/SIGINT. Workers die with the parent (PR_SET_PDEATHSIG), whatever kills it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

RESTART_FIRST = 0.5  # seconds before the first restart of a dead worker, doubling while it keeps dying
RESTART_MAX = 30.0
STABLE_AFTER = 30.0  # a worker up this long starts again from the first pause when it dies
STOP_TIMEOUT = 15.0  # seconds workers get to end their streams before SIGKILL
POLL_INTERVAL = 0.2
PR_SET_PDEATHSIG = 1


def process_count(value: str | int) -> int:
    """``auto`` (one per CPU this process may use) or a positive number."""
    if str(value).strip().lower() == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return os.cpu_count() or 1
    count = int(value)
    if count < 1:
        raise ValueError(f"the engine needs at least one process, not {value!r}")
    return count


def split_port_range(ports: str, index: int, count: int) -> str:
    """Worker ``index``'s share of an ICE port range ``"min-max"`` (empty: any port, for all)."""
    if not ports.strip() or count == 1:
        return ports
    low, _, high = ports.partition("-")
    low_port, high_port = int(low), int(high or low)
    size = (high_port - low_port + 1) // count
    if size < 1:
        raise ValueError(f"the ICE port range {ports!r} has fewer ports than the engine has processes ({count})")
    start = low_port + index * size
    return f"{start}-{start + size - 1}"


def _die_with_parent(parent: int) -> None:
    """In the worker before exec: SIGKILL when the parent dies (so no orphan keeps the public ports)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's stop still ends them
        return
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)


@dataclass
class Worker:
    index: int
    command: list[str]
    process: subprocess.Popen | None = None
    started: float = 0.0
    restart_at: float | None = None
    pause: float = RESTART_FIRST
    crashes: int = field(default=0)

    def start(self) -> None:
        parent = os.getpid()
        self.process = subprocess.Popen(self.command, preexec_fn=lambda: _die_with_parent(parent))
        self.started = time.monotonic()
        self.restart_at = None
        logger.info("engine worker %d started (pid %d)", self.index, self.process.pid)

    def check(self, now: float) -> None:
        """Restart the worker if it died and its pause is over."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.start()
            return
        if self.process is None or self.process.poll() is None:
            return
        if now - self.started > STABLE_AFTER:
            self.pause, self.crashes = RESTART_FIRST, 0
        self.crashes += 1
        self.restart_at = now + self.pause
        print(
            f"engine worker {self.index} ended (exit status {self.process.returncode}): restarting it in "
            f"{self.pause:g} s" + (f", crash {self.crashes} in a row" if self.crashes > 1 else ""),
            file=sys.stderr,
            flush=True,
        )
        self.pause = min(self.pause * 2, RESTART_MAX)


def supervise(commands: list[list[str]]) -> int:
    """Run one worker per command until SIGTERM/SIGINT, then stop them all (SIGKILL after STOP_TIMEOUT)."""
    stop_requests: list[int] = []

    def request_stop(signum, _frame) -> None:
        stop_requests.append(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    workers = [Worker(index, command) for index, command in enumerate(commands)]
    for worker in workers:
        worker.start()
    while not stop_requests:
        now = time.monotonic()
        for worker in workers:
            worker.check(now)
        time.sleep(POLL_INTERVAL)
    running = [worker.process for worker in workers if worker.process is not None and worker.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while running and time.monotonic() < deadline and len(stop_requests) < 2:
        running = [process for process in running if process.poll() is None]
        time.sleep(POLL_INTERVAL)
    for process in running:
        process.kill()
        process.wait()
    return 0
