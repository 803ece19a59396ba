"""The ``Prefer`` header of WCS v3 calls (RFC 7240): ``respond-async, wait=N, timeout=M``.

WCS: a value that is missing or above the server's cap (``WCS_JOBS_MAX_PREFER_WAIT_TIME``,
``WCS_JOBS_MAX_PREFER_TIMEOUT``) is replaced by the cap. A value that is not a number (or a
negative one, or a zero timeout) is ignored the same way, as RFC 7240 ignores preferences it cannot
honour: the call still runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Preferences:
    wait: float  # seconds the call waits for its job before answering 202
    timeout: float  # seconds after which the job is cancelled
    respond_async: bool
    given: bool  # the client sent a Prefer header


def _number(text: str | None, cap: float, allow_zero: bool) -> float:
    try:
        value = float((text or "").strip().strip('"'))
    except ValueError:
        return cap
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        return cap
    return min(value, cap)


def parse_prefer(header: str | None, max_wait: float, max_timeout: float) -> Preferences:
    values: dict[str, str | None] = {}
    for preference in (header or "").split(","):
        token = preference.split(";", 1)[0].strip()  # parameters (";...") are not used
        if not token:
            continue
        name, has_value, value = token.partition("=")
        values.setdefault(name.strip().lower(), value if has_value else None)
    return Preferences(
        wait=_number(values.get("wait"), max_wait, allow_zero=True),
        timeout=_number(values.get("timeout"), max_timeout, allow_zero=False),
        respond_async="respond-async" in values,
        given=bool(values),
    )
