"""Where the platform's outgoing connections may go (the guard against server-side request forgery).

Every connection the platform opens because an API client or an application setting named a URL
(pulls, pushes, WebRTC relays, admission webhooks, HTTP/HLS sources) asks an `OutboundPolicy`
first. A host is resolved and EVERY address it resolves to must be public: loopback, private,
link-local (cloud metadata at 169.254.169.254), carrier-grade NAT, multicast, reserved and
unspecified addresses are refused unless the operator's allow-list names them (a CIDR such as
``10.0.0.0/8`` or ``127.0.0.1``, or a host name such as ``node2.internal``; ``.internal`` allows
every name under ``internal``). A name the allow-list names is trusted with whatever it resolves to.

This module imports no Django: the API server, the Celery workers and the engine node all use it,
each with the allow-list of its settings (the Django side installs a provider with
`set_policy_provider`; until it does, the strict default allows nothing private).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ports a URL scheme connects to when the URL names none (only used for resolution hints).
DEFAULT_PORTS = {"http": 80, "https": 443, "rtmp": 1935, "rtmps": 443, "rtsp": 554, "rtsps": 322}


class OutboundRefused(ValueError):
    """The policy refuses this destination; the message is fit for an API client (a 400's text)."""


class HostUnresolved(OSError):
    """The host name does not resolve (now): the connection cannot be made, nothing is refused."""


def _unmapped(address: IPAddress) -> IPAddress:
    """``::ffff:127.0.0.1`` is 127.0.0.1 for every purpose here."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is a public unicast address (the only ones allowed without the allow-list)."""
    address = _unmapped(address)
    return address.is_global and not address.is_multicast and not address.is_unspecified


@dataclass(frozen=True)
class OutboundPolicy:
    """What may be connected to: public addresses, plus the allow-list's networks and host names."""

    networks: tuple[IPNetwork, ...] = ()
    host_names: frozenset[str] = frozenset()  # lower case; ".suffix" allows every name under it

    @classmethod
    def from_allow_list(cls, entries: Iterable[str]) -> OutboundPolicy:
        """A policy from the allow-list setting: CIDRs, addresses and host names (ValueError on garbage)."""
        networks: list[IPNetwork] = []
        names: set[str] = set()
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if not name or any(char in name for char in "/:@ *?"):
                raise ValueError(f"outbound allow-list entry {entry!r} is neither a CIDR, an address nor a host name")
            names.add(name)
        return cls(tuple(networks), frozenset(names))

    def allows_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.host_names or any(
            name.startswith(".") and (host.endswith(name) or host == name[1:]) for name in self.host_names
        )

    def allows_address(self, address: IPAddress) -> bool:
        address = _unmapped(address)
        return is_public(address) or any(address in network for network in self.networks)

    def check_addresses(self, host: str, addresses: Iterable[str]) -> list[str]:
        """``addresses`` (what ``host`` resolved to) if every one is allowed; else OutboundRefused."""
        addresses = list(dict.fromkeys(addresses))
        if self.allows_name(host):
            return addresses
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not self.allows_address(address):
                shown = host if host == text else f"{host} ({text})"
                raise OutboundRefused(
                    f"{shown} is a {describe(address)} address: outgoing connections there are refused "
                    "(add it to STREAMHUB_OUTBOUND_ALLOW if it is meant)"
                )
        return addresses

    def check_host(self, host: str, port: int | None = None) -> list[str]:
        """Resolve ``host`` and check every address; the addresses. OutboundRefused or HostUnresolved."""
        host = host.strip("[]")
        if not host:
            raise OutboundRefused("the URL has no host")
        if self.allows_name(host):
            return []
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
            return self.check_addresses(host, [host])
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise HostUnresolved(f"{host} does not resolve ({error})") from None
        return self.check_addresses(host, [info[4][0] for info in infos])

    def check_url(self, url: str) -> list[str]:
        """Check the host of ``url`` (any scheme); the resolved addresses. OutboundRefused or HostUnresolved."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise OutboundRefused(f"{url!r} is not a valid URL ({error})") from None
        return self.check_host(parts.hostname or "", port or DEFAULT_PORTS.get(parts.scheme.lower()))

    def check_url_for_api(self, url: str) -> None:
        """The API's check: refuse what resolves to a refused address; a name that does not resolve
        (yet) passes, since the worker checks again before every connection."""
        try:
            self.check_url(url)
        except HostUnresolved:
            pass


def describe(address: IPAddress) -> str:
    address = _unmapped(address)
    for test, words in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, test, False):
            return words
    return "non-public"


# -- the process's policy -------------------------------------------------------------------------

_STRICT = OutboundPolicy()
_provider: Callable[[], OutboundPolicy] = lambda: _STRICT  # noqa: E731


def set_policy_provider(provider: Callable[[], OutboundPolicy]) -> None:
    """Where `current_policy` comes from in this process (the Django side reads its settings)."""
    global _provider
    _provider = provider


def current_policy() -> OutboundPolicy:
    return _provider()


def check_url(url: str) -> list[str]:
    """`OutboundPolicy.check_url` with this process's policy."""
    return current_policy().check_url(url)


# -- aiohttp clients (webhooks, WHIP/WHEP relays) -------------------------------------------------


class PolicyResolver(AbstractResolver):
    """aiohttp resolves through this, so the addresses it connects to are the ones checked (a name
    that answers differently the second time cannot slip past)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        self.policy.check_addresses(host, [result["host"] for result in results])
        return results

    async def close(self) -> None:
        await self._resolver.close()


def guarded_session(policy: OutboundPolicy | None = None, **options) -> aiohttp.ClientSession:
    """An aiohttp session whose connections obey ``policy`` (default: this process's). Host names
    are checked as they resolve; callers check literal addresses with `check_request_url` (aiohttp
    does not resolve those) and do not follow redirects."""
    policy = policy or current_policy()
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=PolicyResolver(policy)), **options)


def check_request_url(url: str, policy: OutboundPolicy | None = None) -> None:
    """Before an aiohttp request: refuse a literal address the policy refuses (names are checked
    by `PolicyResolver` when they resolve)."""
    policy = policy or current_policy()
    host = (urlsplit(url).hostname or "").strip("[]")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if not host:
            raise OutboundRefused(f"{url!r} has no host") from None
        return
    policy.check_addresses(host, [host])
