"""Internal job credentials: how the platform's own media jobs get past the engine's access control.

Record, push, snapshot, pull, transcode and HLS dump jobs read and publish streams of the engine like
any client (RTMP on loopback, HTTP for LL-HLS). When an application is protected (signed policy, ACL
keys, admission webhook), a job's URL carries ``shjob=TOKEN``: an HMAC-SHA256 over (vhost, app,
stream, direction, expiry) with a secret the engine and the workers share. `admission.admit` checks
it first; a valid token lets the job in without signature, ACL key or webhook.

This module knows no Django: callers hand it the secret as plain text. Tokens and the secret are
never logged; `redact_url` hides them (and the other access parameters) in URLs meant for logs,
error fields and API answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass

JOB_QUERY_KEY = "shjob"
PUBLISH = "publish"
PLAY = "play"
DIRECTIONS = (PUBLISH, PLAY)
TOKEN_VERSION = "v1"
# How long a job URL stays usable for (re)connecting; a connected job is not cut at expiry.
DEFAULT_TTL_SECONDS = 24 * 3600
# Query parameters whose values are credentials (ours, OME's signed policy, WCS ACL keys, HLS sessions).
SECRET_QUERY_KEYS = frozenset({JOB_QUERY_KEY, "policy", "signature", "aclAuth", "session"})
# A parameter in free text: its value ends at the next parameter, a space, a quote or ": " (ffmpeg's "URL: error").
_SECRET_PARAMETER = re.compile(r"\b(" + "|".join(sorted(SECRET_QUERY_KEYS)) + r")=[^&#\s'\"<>:]*")


def derive_secret(secret_key: str) -> str:
    """The job secret derived from another secret (Django's SECRET_KEY), so that it is never the key itself."""
    digest = hmac.new(secret_key.encode(), b"streamhub internal job credential", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _signature(secret: str, vhost: str, app: str, stream: str, direction: str, expires_at: int) -> str:
    message = "\x00".join((TOKEN_VERSION, vhost, app, stream, direction, str(expires_at))).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_job_token(
    secret: str,
    vhost: str,
    app: str,
    stream: str,
    direction: str,
    *,
    ttl: float = DEFAULT_TTL_SECONDS,
    now: float | None = None,
) -> str:
    """A token for one job to ``direction`` (`PUBLISH` or `PLAY`) ``vhost/app/stream`` for ``ttl`` seconds."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be {PUBLISH!r} or {PLAY!r}, not {direction!r}")
    if not secret:
        raise ValueError("an internal job token needs a secret")
    expires_at = int((time.time() if now is None else now) + ttl)
    return f"{TOKEN_VERSION}.{expires_at}.{_signature(secret, vhost, app, stream, direction, expires_at)}"


@dataclass(frozen=True)
class TokenCheck:
    valid: bool
    reason: str = ""  # why not (never the token)


def check_job_token(
    secret: str, token: str, vhost: str, app: str, stream: str, direction: str, *, now: float | None = None
) -> TokenCheck:
    """Whether ``token`` lets a job ``direction`` ``vhost/app/stream`` now."""
    if not secret:
        return TokenCheck(False, "the engine has no internal job secret")
    version, _, rest = token.partition(".")
    expiry_text, _, signature = rest.partition(".")
    if version != TOKEN_VERSION or not expiry_text.isdigit() or not signature:
        return TokenCheck(False, "the job token is not valid")
    expected = _signature(secret, vhost, app, stream, direction, int(expiry_text))
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return TokenCheck(False, "the job token is not valid")
    if (time.time() if now is None else now) >= int(expiry_text):
        return TokenCheck(False, "the job token has expired")
    return TokenCheck(True)


def with_job_token(url: str, token: str) -> str:
    """``url`` with ``shjob=TOKEN`` added to its query."""
    return f"{url}{'&' if '?' in url else '?'}{JOB_QUERY_KEY}={token}"


def redact_url(url: str, hidden: frozenset[str] = SECRET_QUERY_KEYS) -> str:
    """``url`` fit for a log line, an error field or an API answer: credential parameter values hidden."""
    if not isinstance(url, str):
        return url
    base, mark, query = url.partition("?")
    if not mark:
        return url
    items = []
    for item in query.split("&"):
        name, eq, _ = item.partition("=")
        items.append(f"{name}=***" if eq and name in hidden else item)
    return f"{base}?{'&'.join(items)}"


def redact_text(text: str) -> str:
    """``text`` (an error message, a tool's output, an HTTP library's exception) with the values of
    credential parameters hidden wherever a URL or query shows in it."""
    return _SECRET_PARAMETER.sub(lambda match: f"{match.group(1)}=***", text)
