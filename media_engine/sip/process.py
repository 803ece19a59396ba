"""The controller's side of a SIP call: starts the `agent` child process, sends it commands,
hands out the events it reports, and copies its log (PJSIP's, on the agent's stderr) to a
`logs.CallLog`."""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path

from media_engine.sip.agent import CallSpec
from media_engine.sip.logs import CallLog

logger = logging.getLogger(__name__)
STOP_TIMEOUT = 10.0  # seconds for the agent to hang up and exit before it is killed


class CallProcess:
    """``python -m media_engine.sip.agent`` for one call. Its stderr (PJSIP's log) goes to
    ``log_path`` when given, as a `CallLog` of at most ``log_max_bytes`` (0: no cap) per part."""

    def __init__(self, spec: CallSpec, log_path: Path | None = None, log_max_bytes: int = 0) -> None:
        self.spec = spec
        self.log_path = log_path
        self.log_max_bytes = log_max_bytes
        self.events: queue.Queue[dict] = queue.Queue()
        self.process: subprocess.Popen | None = None
        self._reader_done = threading.Event()
        self._log_thread: threading.Thread | None = None

    def start(self) -> None:
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        # stderr through a pipe of bytes of its own (stdin/stdout are text): PJSIP's log is copied line by line.
        log_read, log_write = os.pipe() if self.log_path else (None, subprocess.DEVNULL)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "media_engine.sip.agent"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_write, text=True, env=env, cwd=root,
            )  # fmt: skip
        finally:
            if log_read is not None:
                os.close(log_write)
        if log_read is not None:
            log = CallLog(self.log_path, self.log_max_bytes, [self.spec.password])
            stream = os.fdopen(log_read, "rb")
            self._log_thread = threading.Thread(
                target=self._copy_log, args=(stream, log), name="sip-agent-log", daemon=True
            )
            self._log_thread.start()
        self.send(asdict(self.spec))
        threading.Thread(target=self._read_events, name="sip-agent-events", daemon=True).start()

    def send(self, command: dict) -> bool:
        """Write one command line; False when the agent is gone."""
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
            return True
        except (BrokenPipeError, ValueError, OSError):
            return False

    def next_event(self, timeout: float) -> dict | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def finished(self) -> bool:
        """The agent exited and every event it wrote has been handed out."""
        return not self.running and self._reader_done.is_set() and self.events.empty()

    def stop(self) -> None:
        """Hang up (if still running) and wait for the agent; kill it when it does not exit."""
        if self.process is None:
            return
        self.send({"cmd": "hangup"})
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            logger.warning("SIP agent did not exit: killing it")
            self.process.kill()
            self.process.wait()
        if self._log_thread is not None:
            self._log_thread.join(timeout=5)

    def _read_events(self) -> None:
        for line in self.process.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                logger.debug("SIP agent wrote a line that is not an event: %r", line)
        self._reader_done.set()

    @staticmethod
    def _copy_log(stream, log: CallLog) -> None:
        try:
            for line in stream:
                log.write(line)
        finally:
            stream.close()
            log.close()
