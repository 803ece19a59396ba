"""The Django side of the outbound-URL policy (`media_engine.outbound`): the allow-list setting
``STREAMHUB_OUTBOUND_ALLOW`` (``OUTBOUND_ALLOW``) becomes this process's policy, read afresh when it
changes (tests override settings)."""

from __future__ import annotations

from django.conf import settings

from media_engine import outbound
from media_engine.outbound import OutboundPolicy, OutboundRefused

__all__ = ["OutboundRefused", "check_outbound_url", "install", "policy_from_settings"]

_cache: tuple[tuple[str, ...], OutboundPolicy] | None = None


def policy_from_settings() -> OutboundPolicy:
    """The policy of ``settings.OUTBOUND_ALLOW`` (built once per value of the setting)."""
    global _cache
    entries = tuple(getattr(settings, "OUTBOUND_ALLOW", ()) or ())
    if _cache is None or _cache[0] != entries:
        _cache = (entries, OutboundPolicy.from_allow_list(entries))
    return _cache[1]


def install() -> None:
    outbound.set_policy_provider(policy_from_settings)


def check_outbound_url(url: str) -> None:
    """The API's check of a URL the platform will connect to: OutboundRefused (a ValueError whose
    text is fit for a 400) if it resolves to an address the policy refuses."""
    policy_from_settings().check_url_for_api(url)
