"""Record file names: OME's `${...}` macros, and the rule that no path leaves the media root."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings

MACRO = re.compile(r"\$\{(\w+)(?::([^}]*))?\}")
KNOWN_MACROS = {"VirtualHost", "Application", "Stream", "SourceStream", "Id", "TransactionId", "Sequence",
                "StartTime", "EndTime"}  # fmt: skip
TIME_TOKENS = [("YYYY", "%Y"), ("YY", "%y"), ("MM", "%m"), ("DD", "%d"), ("hh", "%H"), ("mm", "%M"), ("ss", "%S")]
DEFAULT_TIME_FORMAT = "YYYYMMDDhhmmss"


class UnsafePath(ValueError):
    """A requested path that is not a plain path under the media root."""


@dataclass(frozen=True)
class MacroValues:
    vhost: str
    app: str
    stream: str
    record_id: str
    sequence: int = 0
    start: datetime | None = None
    end: datetime | None = None


def _format_time(value: datetime | None, pattern: str) -> str:
    if value is None:
        return "0" * len(pattern or DEFAULT_TIME_FORMAT)
    result = pattern or DEFAULT_TIME_FORMAT
    for token, directive in TIME_TOKENS:
        result = result.replace(token, value.strftime(directive))
    return result


def expand(template: str, values: MacroValues) -> str:
    def replace(match: re.Match) -> str:
        name, argument = match.group(1), match.group(2) or ""
        simple = {
            "VirtualHost": values.vhost,
            "Application": values.app,
            "Stream": values.stream,
            "SourceStream": values.stream,
            "Id": values.record_id,
            "TransactionId": values.record_id,
            "Sequence": str(values.sequence),
        }
        if name in simple:
            return simple[name]
        if name == "StartTime":
            return _format_time(values.start, argument)
        if name == "EndTime":
            return _format_time(values.end, argument)
        raise UnsafePath(f"unknown macro ${{{name}}}")

    return MACRO.sub(replace, template)


def media_root() -> Path:
    return Path(settings.MEDIA_ROOT).resolve()


def confine(path: str) -> Path:
    """``path`` (relative to the media root, or absolute inside it) as an absolute path, or UnsafePath."""
    if not path or "\x00" in path:
        raise UnsafePath("an empty path")
    if "://" in path:
        raise UnsafePath(f"{path}: URLs such as file:// are not paths")
    if ".." in Path(path).parts:
        raise UnsafePath(f"{path}: '..' is not allowed")
    root = media_root()
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if resolved != root and root not in resolved.parents:
        raise UnsafePath(f"{path}: outside the media root")
    return resolved


def check_template(template: str, extensions: tuple[str, ...] = ()) -> None:
    """Refuse a template that could ever expand to a path outside the media root."""
    sample = expand(template, MacroValues("vhost", "app", "stream", "id", 1, datetime.now(), datetime.now()))
    resolved = confine(sample)
    if extensions and resolved.suffix.lower() not in extensions:
        raise UnsafePath(f"{template}: the file must end in {' or '.join(extensions)}")
    for name, _argument in MACRO.findall(template):
        if name not in KNOWN_MACROS:
            raise UnsafePath(f"unknown macro ${{{name}}}")
