"""Paths of every media job (records, HLS dumps, pushes, pulls, mixes, calls): OME's `${...}` file
name macros, and the rule that no path leaves the media root (an output path may also go to a folder
of STREAMHUB_EXTRA_OUTPUT_ROOTS: ``confine_output``)."""

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


def _resolved(path: str) -> Path:
    """``path`` resolved (relative: under the media root), refusing what is never a plain path."""
    if not path or "\x00" in path:
        raise UnsafePath("an empty path")
    if "://" in path:
        raise UnsafePath(f"{path}: URLs such as file:// are not paths")
    if ".." in Path(path).parts:
        raise UnsafePath(f"{path}: '..' is not allowed")
    candidate = Path(path)
    return (candidate if candidate.is_absolute() else media_root() / candidate).resolve()


def _inside(resolved: Path, root: Path) -> bool:
    return resolved == root or root in resolved.parents


def confine(path: str) -> Path:
    """``path`` (relative to the media root, or absolute inside it) as an absolute path, or UnsafePath."""
    resolved = _resolved(path)
    if not _inside(resolved, media_root()):
        raise UnsafePath(f"{path}: outside the media root")
    return resolved


def extra_output_roots() -> list[Path]:
    """The folders besides the media root that the operator lets API calls write into
    (``STREAMHUB_EXTRA_OUTPUT_ROOTS``), resolved; relative entries are ignored."""
    return [Path(root).resolve() for root in settings.EXTRA_OUTPUT_ROOTS if root and Path(root).is_absolute()]


def confine_output(path: str) -> Path:
    """An output path (e.g. an HLS dump's folder): like ``confine``, but an absolute path may also be
    inside one of the extra output roots. Reading files (VOD, pictures) stays confined to the media root."""
    resolved = _resolved(path)
    if _inside(resolved, media_root()) or any(_inside(resolved, root) for root in extra_output_roots()):
        return resolved
    where = "the media root" + (" or the allowed output roots" if extra_output_roots() else "")
    raise UnsafePath(f"{path}: outside {where}")


def check_template(template: str, extensions: tuple[str, ...] = ()) -> None:
    """Refuse a template that could ever expand to a path outside the media root."""
    sample = expand(template, MacroValues("vhost", "app", "stream", "id", 1, datetime.now(), datetime.now()))
    resolved = confine(sample)
    if extensions and resolved.suffix.lower() not in extensions:
        raise UnsafePath(f"{template}: the file must end in {' or '.join(extensions)}")
    for name, _argument in MACRO.findall(template):
        if name not in KNOWN_MACROS:
            raise UnsafePath(f"unknown macro ${{{name}}}")
