"""Credentials out of what jobs show: password-like fields and the password of URLs (``rtsp://user:***@cam``)."""

from __future__ import annotations

import re

HIDDEN = "***"
SECRET_KEYS = ("password", "passwd", "secret", "token", "credential")
URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*):[^@\s/]*@")


def redact_text(text: str) -> str:
    return URL_PASSWORD.sub(lambda match: f"{match['head']}:{HIDDEN}@", text)


def redact(value):
    """``value`` (JSON) with secret fields hidden and URL passwords masked."""
    if isinstance(value, dict):
        return {
            key: HIDDEN if any(secret in str(key).lower() for secret in SECRET_KEYS) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
