"""Access control services: the engine's `AccessRules` of an application, checks of OME's
SignedPolicy / AdmissionWebhooks settings, stream ACL keys, and signed URLs.

An application's ``signed_policy`` / ``admission_webhooks`` (OME's vhost shapes) apply when set,
otherwise its virtual host's. ACL keys belong to (application, stream name).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from apps.access.choices import PROVIDERS, PUBLISHERS, Direction, WebhookDefaultAction
from apps.access.models import AclKey
from apps.hosting.models import Application
from apps.security.outbound import OutboundRefused, check_outbound_url
from media_engine.admission import AccessRules, Enables, SignedPolicy, Webhook, make_policy, sign_url

logger = logging.getLogger(__name__)

MISCONFIGURED = "access control of this application is misconfigured"


class AclNotFound(Exception):
    """The stream has no access list (WCS: "404 - ACL not found")."""


# --- OME settings ------------------------------------------------------------------------------


def _check_enables(enables: object, where: str) -> None:
    if enables is None:
        return
    if not isinstance(enables, dict):
        raise ValueError(f"{where}.enables must be an object with providers and publishers")
    for group, known in (("providers", PROVIDERS), ("publishers", PUBLISHERS)):
        value = enables.get(group, "")
        if not isinstance(value, str):
            raise ValueError(f"{where}.enables.{group} must be a comma-separated string such as 'rtmp,srt'")
        unknown = sorted({name.strip().lower() for name in value.split(",") if name.strip()} - set(known))
        if unknown:
            raise ValueError(f"{where}.enables.{group}: unknown {', '.join(unknown)} (known: {', '.join(known)})")


def check_signed_policy(config: object) -> None:
    """Raise ValueError if ``config`` is not a usable OME SignedPolicy setting (None is: none)."""
    if config is None:
        return
    if not isinstance(config, dict):
        raise ValueError("signedPolicy must be a JSON object")
    secret = config.get("secretKey")
    if not isinstance(secret, str) or not secret:
        raise ValueError("signedPolicy.secretKey must be a non-empty string")
    for name in ("policyQueryKeyName", "signatureQueryKeyName"):
        value = config.get(name, "x")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"signedPolicy.{name} must be a non-empty string")
    if config.get("policyQueryKeyName", "policy") == config.get("signatureQueryKeyName", "signature"):
        raise ValueError("signedPolicy.policyQueryKeyName and signatureQueryKeyName must differ")
    _check_enables(config.get("enables"), "signedPolicy")


def check_admission_webhooks(config: object) -> None:
    """Raise ValueError if ``config`` is not a usable OME AdmissionWebhooks setting (None is: none)."""
    if config is None:
        return
    if not isinstance(config, dict):
        raise ValueError("admissionWebhooks must be a JSON object")
    url = config.get("controlServerUrl")
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("admissionWebhooks.controlServerUrl must be an http(s):// URL")
    try:
        check_outbound_url(url)
    except OutboundRefused as refused:
        raise ValueError(f"admissionWebhooks.controlServerUrl: {refused}") from None
    if not isinstance(config.get("secretKey", ""), str):
        raise ValueError("admissionWebhooks.secretKey must be a string")
    timeout = config.get("timeout", settings.ACCESS_WEBHOOK_TIMEOUT_MS)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 1 <= timeout <= 60_000:
        raise ValueError("admissionWebhooks.timeout must be milliseconds between 1 and 60000")
    action = config.get("defaultAction", settings.ACCESS_WEBHOOK_DEFAULT_ACTION)
    if action not in WebhookDefaultAction.values:
        raise ValueError("admissionWebhooks.defaultAction must be 'deny' or 'allow'")
    _check_enables(config.get("enables"), "admissionWebhooks")


def effective_settings(application: Application) -> tuple[dict | None, dict | None]:
    """(signedPolicy, admissionWebhooks) that apply to ``application``: its own, else its vhost's."""
    vhost = application.virtual_host
    policy = application.signed_policy if application.signed_policy is not None else vhost.signed_policy
    hooks = application.admission_webhooks if application.admission_webhooks is not None else vhost.admission_webhooks
    return policy or None, hooks or None


def access_rules(application: Application) -> AccessRules:
    """What the engine enforces for ``application`` (see media_engine.admission)."""
    policy_config, hook_config = effective_settings(application)
    acl: dict[str, set[str]] = {}
    for stream_name, key in AclKey.objects.filter(application=application).values_list("stream_name", "key"):
        acl.setdefault(stream_name, set()).add(key)
    frozen_acl = {name: frozenset(keys) for name, keys in acl.items()}
    try:
        check_signed_policy(policy_config)
        check_admission_webhooks(hook_config)
    except ValueError as error:
        # Fail closed: a protected application with broken settings lets nobody in.
        logger.error("access control of %s: %s", application.path, error)
        return AccessRules(acl=frozen_acl, misconfigured=MISCONFIGURED)
    signed_policy = None
    if policy_config:
        signed_policy = SignedPolicy(
            secret=policy_config["secretKey"],
            enables=Enables.from_ome(policy_config.get("enables")),
            policy_key=policy_config.get("policyQueryKeyName", "policy"),
            signature_key=policy_config.get("signatureQueryKeyName", "signature"),
        )
    webhook = None
    if hook_config:
        webhook = Webhook(
            url=hook_config["controlServerUrl"],
            enables=Enables.from_ome(hook_config.get("enables")),
            secret=hook_config.get("secretKey", ""),
            timeout=float(hook_config.get("timeout", settings.ACCESS_WEBHOOK_TIMEOUT_MS)) / 1000,
            allow_on_failure=(
                hook_config.get("defaultAction", settings.ACCESS_WEBHOOK_DEFAULT_ACTION) == WebhookDefaultAction.ALLOW
            ),
        )
    return AccessRules(signed_policy=signed_policy, webhook=webhook, acl=frozen_acl)


# --- stream ACL keys ---------------------------------------------------------------------------


def acl_keys(application: Application, stream_name: str) -> list[str]:
    return list(AclKey.objects.of_stream(application, stream_name).values_list("key", flat=True))


@transaction.atomic
def add_acl_keys(application: Application, stream_name: str, keys: list[str]) -> None:
    existing = set(acl_keys(application, stream_name))
    AclKey.objects.bulk_create(
        AclKey(application=application, stream_name=stream_name, key=key)
        for key in dict.fromkeys(keys)
        if key not in existing
    )


def remove_acl_keys(application: Application, stream_name: str, keys: list[str]) -> None:
    """Remove ``keys``; AclNotFound if the stream has no access list."""
    entries = AclKey.objects.of_stream(application, stream_name)
    if not entries.exists():
        raise AclNotFound(stream_name)
    entries.filter(key__in=keys).delete()


def clear_acl(application: Application, stream_name: str) -> None:
    AclKey.objects.of_stream(application, stream_name).delete()


# --- signed URLs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedUrlSpec:
    expires_in: float  # seconds from now
    allow_ip: str = ""  # a CIDR, or empty for any address
    stream_expires_in: float | None = None  # seconds from now a session may last, or None
    activate_in: float | None = None  # seconds from now before which the URL does not work


def check_allow_ip(value: str) -> str:
    """The CIDR in its normal form; ValueError if it is not one."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR range") from None


def sign(application: Application, url: str, spec: SignedUrlSpec, now: float | None = None) -> str:
    """``url`` signed with the signed policy that applies to ``application``; ValueError if it has none."""
    policy_config, _ = effective_settings(application)
    check_signed_policy(policy_config)
    if not policy_config:
        raise ValueError(f"{application.path} has no signedPolicy (set it on the application or its virtual host)")
    if spec.expires_in <= 0:
        raise ValueError("the expiry must be in the future")
    now = time.time() if now is None else now
    policy = make_policy(
        int((now + spec.expires_in) * 1000),
        url_activate_ms=int((now + spec.activate_in) * 1000) if spec.activate_in is not None else None,
        stream_expire_ms=int((now + spec.stream_expires_in) * 1000) if spec.stream_expires_in is not None else None,
        allow_ip=check_allow_ip(spec.allow_ip) if spec.allow_ip else None,
    )
    return sign_url(
        url,
        policy_config["secretKey"],
        policy,
        policy_config.get("policyQueryKeyName", "policy"),
        policy_config.get("signatureQueryKeyName", "signature"),
    )


def stream_urls(application: Application, stream_name: str, direction: str, host: str = "") -> dict[str, str]:
    """The unsigned URLs of a stream on this platform's engine, per protocol, for ``direction``."""
    host = host or settings.ENGINE_NODE_ADDRESS
    rtmp = f"rtmp://{host}:{settings.ENGINE_RTMP_PORT}/{application.name}/{stream_name}"
    media = (settings.STREAMHUB_MEDIA_URL or f"http://{host}:{settings.ENGINE_HTTP_PORT}").rstrip("/")
    base = f"{media}/{application.name}/{stream_name}"
    if direction == Direction.PUBLISH:
        return {"rtmp": rtmp, "webrtc (WHIP)": f"{base}?direction=whip"}
    return {
        "rtmp": rtmp,
        "hls": f"{base}/ts:playlist.m3u8",
        "llhls": f"{base}/llhls.m3u8",
        "webrtc (WHEP)": f"{base}?direction=whep",
    }


def signed_stream_urls(
    application: Application, stream_name: str, direction: str, spec: SignedUrlSpec, host: str = ""
) -> dict[str, str]:
    return {
        protocol: sign(application, url, spec)
        for protocol, url in stream_urls(application, stream_name, direction, host).items()
    }
