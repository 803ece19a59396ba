"""The one rule for stream names, shared by the engine's entry points and the API (no Django here).

A stream name becomes a path segment of every media URL, part of recording and dump file names and
a database key, so it is refused wherever it enters (RTMP publish/play, WHIP/WHEP, SRT streamid, the
API's pulls and MPEG-TS listeners) unless it is letters, digits, ``_``, ``-`` and ``.``, starting with
a letter, digit or ``_`` (so never ``.``, ``..`` or a hidden file), and at most `STREAM_NAME_MAX_LENGTH`
characters (the database column's size).
"""

from __future__ import annotations

import re

STREAM_NAME_MAX_LENGTH = 255


def name_pattern(max_length: int) -> str:
    """The regular expression of a name of at most ``max_length`` characters: streams use it with
    `STREAM_NAME_MAX_LENGTH`, the API's vhosts, applications and output profiles with 100."""
    return rf"^[A-Za-z0-9_][A-Za-z0-9_.\-]{{0,{max_length - 1}}}$"


STREAM_NAME_PATTERN = name_pattern(STREAM_NAME_MAX_LENGTH)
STREAM_NAME_RULE = (
    "a stream name is letters, digits, '_', '-' and '.', starting with a letter, digit or '_', "
    f"at most {STREAM_NAME_MAX_LENGTH} characters"
)
_STREAM_NAME = re.compile(STREAM_NAME_PATTERN)


class InvalidStreamName(ValueError):
    """A stream name that breaks `STREAM_NAME_RULE`."""


def is_valid_stream_name(name: object) -> bool:
    return isinstance(name, str) and _STREAM_NAME.fullmatch(name) is not None


def check_stream_name(name: object) -> str:
    """``name`` if it follows the rule; otherwise InvalidStreamName saying why (the name shortened)."""
    if is_valid_stream_name(name):
        return name  # type: ignore[return-value]  (is_valid_stream_name checked it is a str)
    shown = repr(name) if not isinstance(name, str) or len(name) <= 40 else f"{name[:40]!r}... ({len(name)} chars)"
    raise InvalidStreamName(f"invalid stream name {shown}: {STREAM_NAME_RULE}")
