"""Each SIP call's log (PJSIP's, which the agent writes on its stderr): one file per call, the
SIP password masked, capped in size (rotated once: ``call-N.log`` and ``call-N.log.1``), and
removed when old (`prune_call_logs`) or with its call (`call_log_files`)."""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from pathlib import Path

MASK = b"***"
# A secret shorter than this is not masked: masking every "12" would garble the log and hide nothing.
MIN_MASKED_LENGTH = 4


def call_log_path(folder: Path, call_key: object) -> Path:
    return Path(folder) / f"call-{call_key}.log"


def call_log_files(folder: Path, call_key: object) -> list[Path]:
    """The call's log and its rotated part, those that exist."""
    current = call_log_path(folder, call_key)
    return [path for path in (current, current.with_name(current.name + ".1")) if path.is_file()]


def prune_call_logs(folder: Path, older_than_seconds: float, keep: Collection[object] = ()) -> int:
    """Remove the call logs (``call-*.log``, ``call-*.log.1``) last written more than
    ``older_than_seconds`` ago, but those of the calls in ``keep`` (live ones); returns how many went."""
    cutoff = time.time() - older_than_seconds
    kept = {call_log_path(folder, key).name for key in keep}
    removed = 0
    for path in Path(folder).glob("call-*.log*"):
        if path.name.removesuffix(".1") in kept:
            continue
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # another worker's sweep took it
    return removed


class CallLog:
    """Lines written to ``path`` (appended: a call placed again goes on in its file) with every
    ``secrets`` masked; past ``max_bytes`` the file becomes ``<path>.1`` (replacing the older one)
    and a new one starts, so a call's log takes at most about twice ``max_bytes``."""

    def __init__(self, path: Path, max_bytes: int, secrets: list[str] = ()) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.secrets = [secret.encode() for secret in secrets if len(secret) >= MIN_MASKED_LENGTH]
        self.file = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        self.size = self.file.tell()

    def write(self, line: bytes) -> None:
        for secret in self.secrets:
            line = line.replace(secret, MASK)
        if self.max_bytes > 0 and self.size and self.size + len(line) > self.max_bytes:
            self._rotate()
        self.file.write(line)
        self.file.flush()
        self.size += len(line)

    def _rotate(self) -> None:
        self.file.close()
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self.file = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        self.size = 0

    def close(self) -> None:
        self.file.close()
