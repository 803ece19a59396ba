"""The engine's one admission point: may this client publish or play this stream?

Every ingest and output asks `admit()` before it lets a client in: the RTMP session (publish and
play), the SRT ingest, the media HTTP server (HLS, LL-HLS; WHIP/WHEP call `admit()` the same way).
The rules of an application come with its `ApplicationConfig` (``access``), made by the control
plane; this module knows no Django.

A media job of the platform itself (record, push, pull, transcode...) carries an internal job token
(``shjob``, see `media_engine.internal_auth`) instead: it is checked first, and a valid one lets the
job in without the checks below (nor a webhook call); a request with an invalid one is refused.

Three checks, in this order, each only where the rules enable it:

- **Signed policy** (OME's SignedPolicy): the URL carries ``policy`` (base64url JSON with
  ``url_expire``, ``url_activate``, ``stream_expire`` in epoch milliseconds and ``allow_ip`` as a
  CIDR) and ``signature`` = base64url(HMAC-SHA1(secret, the URL up to the signature parameter)).
- **Stream ACL keys** (WCS's ``/cdn/stream/access_list``): playing a stream that has keys needs
  ``aclAuth=KEY`` in the query.
- **Admission webhook** (OME's AdmissionWebhooks): the request is POSTed to the control server,
  whose ``{"allowed", "new_url", "lifetime", "reason"}`` answer allows, denies or rewrites it. A
  timeout or an unusable answer takes the configured default action.

Secrets (policy secret, webhook secret, ACL keys) are never logged nor put in a refusal reason.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp

from media_engine import internal_auth
from media_engine.outbound import check_request_url, guarded_session

logger = logging.getLogger(__name__)

PUBLISH = "incoming"  # OME's webhook "direction" of a publisher
PLAY = "outgoing"  # ... and of a player
ACL_QUERY_KEY = "aclAuth"
SESSION_QUERY_KEY = "session"
DEFAULT_WEBHOOK_TIMEOUT = 3.0
SIGNATURE_HEADER = "X-OME-Signature"


# --- rules, as the control plane hands them over ----------------------------------------------


def _names(value: object) -> frozenset[str]:
    """OME's ``"rtmp,webrtc,srt"`` (or a list) as a set of lower-case names."""
    if isinstance(value, str):
        items: Iterable[object] = value.split(",")
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    else:
        items = ()
    return frozenset(str(item).strip().lower() for item in items if str(item).strip())


@dataclass(frozen=True)
class Enables:
    """Which publish protocols (OME's providers) and play protocols (publishers) a check applies to."""

    providers: frozenset[str] = frozenset()
    publishers: frozenset[str] = frozenset()

    @classmethod
    def from_ome(cls, enables: object) -> Enables:
        enables = enables if isinstance(enables, dict) else {}
        return cls(_names(enables.get("providers")), _names(enables.get("publishers")))

    def covers(self, direction: str, protocol: str) -> bool:
        return protocol in (self.providers if direction == PUBLISH else self.publishers)


@dataclass(frozen=True)
class SignedPolicy:
    secret: str = field(repr=False)
    enables: Enables = Enables()
    policy_key: str = "policy"
    signature_key: str = "signature"


@dataclass(frozen=True)
class Webhook:
    url: str
    enables: Enables = Enables()
    secret: str = field(default="", repr=False)
    timeout: float = DEFAULT_WEBHOOK_TIMEOUT
    allow_on_failure: bool = False  # the default action when the control server does not answer usably


@dataclass(frozen=True)
class AccessRules:
    """The access control of one application. The default lets everyone in."""

    signed_policy: SignedPolicy | None = None
    webhook: Webhook | None = None
    # stream name -> keys (left out of equality and hashing: a dict)
    acl: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False, compare=False)
    misconfigured: str = ""  # not empty: refuse everything enabled, with this reason (fail closed)
    # The secret of internal job tokens (shared with the workers; empty: no job is let in by token).
    job_secret: str = field(default="", repr=False, compare=False)
    # Not empty: publishes are refused with this reason unless a platform job's token lets them in
    # (an edge node of an origin-edge cluster takes no publishers, as WCS and OME edges do).
    publish_refused: str = ""

    def checks(self, direction: str, protocol: str, stream: str) -> bool:
        """Whether a request needs `admit()` at all (False: let it in without looking further)."""
        if self.misconfigured or (self.publish_refused and direction == PUBLISH):
            return True
        if self.signed_policy is not None and self.signed_policy.enables.covers(direction, protocol):
            return True
        if self.webhook is not None and self.webhook.enables.covers(direction, protocol):
            return True
        return direction == PLAY and bool(self.acl.get(stream))


OPEN = AccessRules()


# --- requests and decisions --------------------------------------------------------------------


@dataclass(frozen=True)
class AdmissionRequest:
    direction: str  # PUBLISH or PLAY
    protocol: str  # "rtmp", "srt", "hls", "llhls", "webrtc"
    url: str  # as the client asked for it, query included
    client_address: str  # IP
    client_port: int = 0
    stream: str = ""  # the stream name the URL names
    user_agent: str = ""
    vhost: str = ""  # the virtual host and application the request was resolved to (for job tokens)
    app: str = ""

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.url).query, keep_blank_values=True))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    new_url: str = ""  # the webhook's rewrite (empty: none)
    # Wall-clock time (epoch seconds) after which an admitted session must end; None: no limit.
    expires_at: float | None = None

    @property
    def new_target(self) -> tuple[str, str] | None:
        """(app, stream) of the rewritten URL, if the webhook rewrote it."""
        if not self.new_url:
            return None
        parts = [part for part in urlsplit(self.new_url).path.split("/") if part]
        if len(parts) < 2:
            return None
        return parts[-2], parts[-1]


ALLOWED = Decision(True)


def _earliest(*times: float | None) -> float | None:
    present = [value for value in times if value is not None]
    return min(present) if present else None


# --- signed policy ------------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_policy(
    url_expire_ms: int,
    *,
    url_activate_ms: int | None = None,
    stream_expire_ms: int | None = None,
    allow_ip: str | None = None,
) -> str:
    """The base64url ``policy`` value of OME's SignedPolicy."""
    policy: dict[str, object] = {"url_expire": int(url_expire_ms)}
    if url_activate_ms is not None:
        policy["url_activate"] = int(url_activate_ms)
    if stream_expire_ms is not None:
        policy["stream_expire"] = int(stream_expire_ms)
    if allow_ip:
        policy["allow_ip"] = str(ipaddress.ip_network(allow_ip, strict=False))
    return b64url_encode(json.dumps(policy, separators=(",", ":")).encode())


def signature_of(url: str, secret: str) -> str:
    return b64url_encode(hmac.new(secret.encode(), url.encode(), hashlib.sha1).digest())


def sign_url(url: str, secret: str, policy: str, policy_key: str = "policy", signature_key: str = "signature") -> str:
    """``url`` with ``policy`` and ``signature`` appended, as OME's signed URLs are made."""
    joiner = "&" if "?" in url else "?"
    unsigned = f"{url}{joiner}{policy_key}={quote(policy, safe='')}"
    return f"{unsigned}&{signature_key}={signature_of(unsigned, secret)}"


def _split_signature(url: str, signature_key: str) -> tuple[str, str] | None:
    """(the URL without the signature parameter, the signature), or None if it has none."""
    base, mark, query = url.partition("?")
    if not mark:
        return None
    kept: list[str] = []
    signature = None
    for item in query.split("&"):
        name, _, value = item.partition("=")
        if name == signature_key and signature is None:
            signature = value
        else:
            kept.append(item)
    if signature is None:
        return None
    return (f"{base}?{'&'.join(kept)}" if kept else base), signature


def _port_variants(url: str) -> list[str]:
    """The URL as signed, and with the scheme's default port added or dropped (RTMP clients add it)."""
    defaults = {"rtmp": 1935, "http": 80, "https": 443, "srt": 9999}
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [url]
    default = defaults.get(parts.scheme.lower())
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if default is None:
        return [url]
    if port == default:
        return [url, parts._replace(netloc=host).geturl()]
    if port is None:
        return [url, parts._replace(netloc=f"{host}:{default}").geturl()]
    return [url]


def check_signed_policy(request: AdmissionRequest, rules: SignedPolicy, now: float) -> Decision:
    """OME's SignedPolicy on one request (``now`` in epoch seconds)."""
    split = _split_signature(request.url, rules.signature_key)
    query = request.query
    encoded = query.get(rules.policy_key)
    if split is None or not encoded:
        return Decision(False, "a signed URL is required")
    unsigned, signature = split
    try:
        policy = json.loads(b64url_decode(encoded))
        if not isinstance(policy, dict):
            raise ValueError("not an object")
    except (ValueError, binascii.Error):
        return Decision(False, "the policy is not valid")
    if not any(
        hmac.compare_digest(signature_of(candidate, rules.secret), signature) for candidate in _port_variants(unsigned)
    ):
        return Decision(False, "the signature does not match")
    now_ms = now * 1000
    try:
        url_expire = policy["url_expire"]
        if not isinstance(url_expire, int | float) or now_ms >= url_expire:
            return Decision(False, "the URL has expired")
        activate = policy.get("url_activate")
        if activate is not None and now_ms < float(activate):
            return Decision(False, "the URL is not active yet")
        allow_ip = policy.get("allow_ip")
        if allow_ip:
            network = ipaddress.ip_network(str(allow_ip), strict=False)
            if ipaddress.ip_address(request.client_address) not in network:
                return Decision(False, "the client address is not allowed")
        stream_expire = policy.get("stream_expire")
        expires_at = float(stream_expire) / 1000 if stream_expire is not None else None
    except KeyError:
        return Decision(False, "the policy has no url_expire")
    except (TypeError, ValueError):
        return Decision(False, "the policy is not valid")
    if expires_at is not None and now >= expires_at:
        return Decision(False, "the stream time has expired")
    return Decision(True, expires_at=expires_at)


# --- ACL keys -----------------------------------------------------------------------------------


def check_acl(request: AdmissionRequest, keys: frozenset[str]) -> Decision:
    given = request.query.get(ACL_QUERY_KEY, "")
    if given and any(hmac.compare_digest(given.encode(), key.encode()) for key in keys):
        return ALLOWED
    return Decision(False, "the stream's access list does not hold this key")


# --- admission webhook --------------------------------------------------------------------------


def webhook_body(request: AdmissionRequest, now: float) -> dict:
    """The JSON OME POSTs to the control server for an opening session."""
    moment = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
    return {
        "client": {
            "address": request.client_address,
            "port": request.client_port,
            "user_agent": request.user_agent,
        },
        "request": {
            "direction": request.direction,
            "protocol": request.protocol,
            "status": "opening",
            "url": request.url,
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        },
    }


def webhook_decision(answer: object, now: float) -> Decision | None:
    """The control server's answer as a Decision; None if it is not one."""
    if not isinstance(answer, dict) or not isinstance(answer.get("allowed"), bool):
        return None
    reason = answer.get("reason")
    reason = reason if isinstance(reason, str) else ""
    if not answer["allowed"]:
        return Decision(False, reason or "refused by the admission webhook")
    new_url = answer.get("new_url")
    lifetime = answer.get("lifetime")
    expires_at = None
    if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and lifetime > 0:
        expires_at = now + lifetime / 1000
    return Decision(True, reason, new_url if isinstance(new_url, str) else "", expires_at)


async def call_webhook(request: AdmissionRequest, hook: Webhook, now: float) -> Decision:
    body = json.dumps(webhook_body(request, now)).encode()
    headers = {"Content-Type": "application/json"}
    if hook.secret:
        digest = hmac.new(hook.secret.encode(), body, hashlib.sha1).digest()
        headers[SIGNATURE_HEADER] = b64url_encode(digest)
    failure = "the admission webhook did not answer"
    try:
        timeout = aiohttp.ClientTimeout(total=hook.timeout)
        # Only where the outbound policy allows (checked on the addresses connected to); no redirects.
        check_request_url(hook.url)
        async with guarded_session(timeout=timeout) as session:
            async with session.post(hook.url, data=body, headers=headers, allow_redirects=False) as response:
                if response.status == 200:
                    decision = webhook_decision(await response.json(content_type=None), now)
                    if decision is not None:
                        return decision
                failure = f"the admission webhook answered {response.status} without a decision"
    except TimeoutError:
        failure = "the admission webhook timed out"
    except (aiohttp.ClientError, ValueError, OSError) as error:
        failure = f"the admission webhook failed ({type(error).__name__})"
    logger.warning("admission of %s %s: %s", request.protocol, request.direction, failure)
    if hook.allow_on_failure:
        return ALLOWED
    return Decision(False, failure)


# --- internal job tokens -----------------------------------------------------------------------


def check_job_token(request: AdmissionRequest, rules: AccessRules, token: str, now: float) -> Decision:
    """A platform media job's ``shjob`` token: valid for this vhost, app, stream and direction, unexpired."""
    direction = internal_auth.PUBLISH if request.direction == PUBLISH else internal_auth.PLAY
    check = internal_auth.check_job_token(
        rules.job_secret, token, request.vhost, request.app, request.stream, direction, now=now
    )
    if not check.valid:
        logger.info("admission of %s %s of %s: %s", request.protocol, request.direction, request.stream, check.reason)
        return Decision(False, check.reason)
    return ALLOWED


# --- the admission point ------------------------------------------------------------------------


async def admit(rules: AccessRules, request: AdmissionRequest, *, clock: Callable[[], float] = time.time) -> Decision:
    """Allow, deny or rewrite ``request`` under ``rules``: a job token alone if there is one, else signed
    policy, then ACL keys, then the webhook."""
    direction, protocol = request.direction, request.protocol
    job_token = request.query.get(internal_auth.JOB_QUERY_KEY)
    if job_token is not None:
        return check_job_token(request, rules, job_token, clock())
    if rules.publish_refused and direction == PUBLISH:
        return Decision(False, rules.publish_refused)
    if rules.misconfigured:
        return Decision(False, rules.misconfigured)
    now = clock()
    expires_at = None
    policy = rules.signed_policy
    if policy is not None and policy.enables.covers(direction, protocol):
        decision = check_signed_policy(request, policy, now)
        if not decision.allowed:
            return decision
        expires_at = decision.expires_at
    keys = rules.acl.get(request.stream) if direction == PLAY else None
    if keys:
        decision = check_acl(request, keys)
        if not decision.allowed:
            return decision
    hook = rules.webhook
    if hook is not None and hook.enables.covers(direction, protocol):
        decision = await call_webhook(request, hook, now)
        if not decision.allowed:
            return decision
        return Decision(True, decision.reason, decision.new_url, _earliest(expires_at, decision.expires_at))
    return Decision(True, expires_at=expires_at)


def redact(url: str, rules: AccessRules | None = None) -> str:
    """``url`` fit for a log line: the values of the policy, signature, ACL, session and job token
    parameters hidden."""
    hidden = internal_auth.SECRET_QUERY_KEYS | {ACL_QUERY_KEY, SESSION_QUERY_KEY}
    if rules is not None and rules.signed_policy is not None:
        hidden |= {rules.signed_policy.policy_key, rules.signed_policy.signature_key}
    return internal_auth.redact_url(url, frozenset(hidden))


# --- HTTP sessions (HLS, LL-HLS): one decision per viewer, not per request ------------------------


@dataclass
class Grant:
    token: str
    stream: tuple[str, str, str]  # vhost, app, name
    client_address: str
    expires_at: float | None  # epoch seconds
    last_used: float


class GrantCache:
    """Admitted HTTP viewers: a token per (client, stream, query) that later requests carry.

    A playlist request that passes `admit()` gets a token; the playlist's URIs carry it as
    ``session=TOKEN``, so segment and part requests (and reloads) are answered from here without
    a new signature check or webhook call. A grant ends at its decision's expiry, or after
    ``idle`` seconds unused.
    """

    def __init__(self, idle: float = 120.0, clock: Callable[[], float] = time.time, max_grants: int = 100_000):
        self.idle = idle
        self.clock = clock
        self.max_grants = max_grants
        self._by_token: dict[str, Grant] = {}
        self._by_request: dict[tuple, str] = {}

    def _alive(self, grant: Grant, now: float) -> bool:
        if grant.expires_at is not None and now >= grant.expires_at:
            return False
        return now - grant.last_used < self.idle

    def lookup(self, token: str, stream: tuple[str, str, str], client_address: str) -> Grant | None:
        grant = self._by_token.get(token)
        now = self.clock()
        if grant is None or grant.stream != stream or grant.client_address != client_address:
            return None
        if not self._alive(grant, now):
            self._forget(grant)
            return None
        grant.last_used = now
        return grant

    def for_request(self, request_key: tuple) -> Grant | None:
        token = self._by_request.get(request_key)
        if token is None:
            return None
        grant = self._by_token.get(token)
        if grant is None:
            return None
        return self.lookup(token, grant.stream, grant.client_address)

    def add(self, request_key: tuple, stream: tuple[str, str, str], client_address: str, decision: Decision) -> Grant:
        if len(self._by_token) >= self.max_grants:
            self.sweep()
        now = self.clock()
        grant = Grant(secrets.token_urlsafe(18), stream, client_address, decision.expires_at, now)
        self._by_token[grant.token] = grant
        self._by_request[request_key] = grant.token
        return grant

    def _forget(self, grant: Grant) -> None:
        self._by_token.pop(grant.token, None)
        for key, token in list(self._by_request.items()):
            if token == grant.token:
                del self._by_request[key]

    def sweep(self) -> None:
        now = self.clock()
        dead = {token for token, grant in self._by_token.items() if not self._alive(grant, now)}
        for token in dead:
            del self._by_token[token]
        self._by_request = {key: token for key, token in self._by_request.items() if token not in dead}

    def __len__(self) -> int:
        return len(self._by_token)


def add_session_to_playlist(playlist: bytes, token: str) -> bytes:
    """The playlist with ``session=TOKEN`` on every URI it names (lines and ``URI="..."`` attributes)."""
    param = f"{SESSION_QUERY_KEY}={token}"

    def with_param(uri: str) -> str:
        return f"{uri}{'&' if '?' in uri else '?'}{param}"

    lines = []
    for line in playlist.decode("utf-8").split("\n"):
        if line and not line.startswith("#"):
            line = with_param(line)
        elif 'URI="' in line:
            pieces = line.split('URI="')
            for index in range(1, len(pieces)):
                uri, quote_mark, rest = pieces[index].partition('"')
                pieces[index] = with_param(uri) + quote_mark + rest
            line = 'URI="'.join(pieces)
        lines.append(line)
    return "\n".join(lines).encode("utf-8")
