"""What the API server says about its own exposure when it starts: WCS's REST API is open by default
(as WCS ships, ``disable_rest_auth``), which is fine on loopback and loud beyond it."""

from __future__ import annotations

import ipaddress
import logging
import sys
from collections.abc import Sequence

from django.conf import settings

logger = logging.getLogger("streamhub.security")


def listening_host(argv: Sequence[str] | None = None) -> str:
    """The address this API server binds: Daphne's ``-b``/``--bind`` when started so, else the
    ``STREAMHUB_API_HOST`` setting (what scripts/run_platform.py passes to Daphne)."""
    argv = list(sys.argv if argv is None else argv)
    for index, arg in enumerate(argv):
        if arg in ("-b", "--bind") and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--bind="):
            return arg.split("=", 1)[1]
    return settings.API_HOST


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def warn_if_wcs_open(host: str | None = None) -> bool:
    """Log a loud warning when the WCS API answers without credentials on a non-loopback address;
    whether it did."""
    host = listening_host() if host is None else host
    if settings.WCS_REST_AUTH or is_loopback(host):
        return False
    logger.warning(
        "\n%s\nWCS REST API IS OPEN: /rest-api and /rest-api/v3 answer WITHOUT CREDENTIALS on %s.\n"
        "Anyone who reaches this port can start pulls, pushes, recordings and read every stream.\n"
        "Switch on authentication with STREAMHUB_WCS_REST_AUTH=true (HTTP Basic against Django users),\n"
        'or listen on loopback only (STREAMHUB_API_HOST=127.0.0.1). See README, "Security".\n%s',
        "!" * 100,
        host,
        "!" * 100,
    )
    return True
