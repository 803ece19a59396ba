"""The development secrets StreamHub ships with, and the warnings about using them on a network.

Plain Python (no Django): `scripts/run_platform.py` checks them before it starts anything, the
settings refuse them in production mode (STREAMHUB_PRODUCTION=1).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

DEV_SECRET_KEY = "dev-insecure-streamhub-secret-key-change-me"
DEV_OME_ACCESS_TOKEN = "ome-access-token"


def is_loopback(host: str) -> bool:
    """Whether a listening address is reachable from this machine only ("" and 0.0.0.0 are not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def development_secrets_in_use(environ: Mapping[str, str]) -> list[str]:
    """The settings of `environ` that still hold (or default to) a development secret."""
    found = []
    if environ.get("DJANGO_SECRET_KEY", DEV_SECRET_KEY) == DEV_SECRET_KEY:
        found.append("DJANGO_SECRET_KEY")
    if environ.get("OME_ACCESS_TOKEN", DEV_OME_ACCESS_TOKEN) == DEV_OME_ACCESS_TOKEN:
        found.append("OME_ACCESS_TOKEN")
    return found
