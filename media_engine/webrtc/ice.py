"""ICE policy of this node's peer connections: which addresses host candidates use, the UDP port
range they bind in (for firewalls), and the STUN/TURN servers.

aioice gathers host candidates on every interface but loopback, on any port, and aiortc falls back
to Google's public STUN server when given none. `install()` swaps aiortc's ICE connection for
`PolicyConnection`, which takes the `IcePolicy` in force when the peer connection is built (see
`use_policy`); peer connections built without one behave as aiortc's.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import aioice.ice
import aiortc.rtcicetransport
from aiortc import RTCConfiguration, RTCIceServer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IceServer:
    """One STUN or TURN server, as RTCIceServer takes it (``stun:host:port``, ``turn:host:port?transport=udp``)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def public_dict(self) -> dict:
        """What a browser needs (the page's RTCPeerConnection configuration)."""
        entry: dict = {"urls": list(self.urls)}
        if self.username is not None:
            entry["username"] = self.username
            entry["credential"] = self.credential or ""
        return entry


@dataclass(frozen=True)
class IcePolicy:
    """``host_addresses`` empty: every non-loopback interface address; ``port_min``/``port_max`` 0: any port."""

    host_addresses: tuple[str, ...] = ()
    port_min: int = 0
    port_max: int = 0
    ice_servers: tuple[IceServer, ...] = field(default=())

    def __post_init__(self) -> None:
        for address in self.host_addresses:
            ipaddress.ip_address(address)  # ValueError on a typo, at start-up rather than per call
        if (self.port_min or self.port_max) and not (0 < self.port_min <= self.port_max <= 65535):
            raise ValueError(f"bad ICE port range {self.port_min}-{self.port_max}")

    @property
    def loopback_only(self) -> bool:
        return bool(self.host_addresses) and all(ipaddress.ip_address(a).is_loopback for a in self.host_addresses)

    def rtc_configuration(self) -> RTCConfiguration:
        # Always a list: None would make aiortc use stun.l.google.com.
        servers = [RTCIceServer(list(s.urls), s.username, s.credential) for s in self.ice_servers]
        return RTCConfiguration(iceServers=servers)

    def ports(self) -> list[int]:
        """The ports to try for one socket, in random order (0: any)."""
        if not self.port_min:
            return [0]
        ports = list(range(self.port_min, self.port_max + 1))
        random.shuffle(ports)
        return ports


_current_policy: contextvars.ContextVar[IcePolicy | None] = contextvars.ContextVar("ice_policy", default=None)


@contextmanager
def use_policy(policy: IcePolicy) -> Iterator[None]:
    """Peer connection calls (setRemoteDescription, addTransceiver...) made inside use ``policy``."""
    token = _current_policy.set(policy)
    try:
        yield
    finally:
        _current_policy.reset(token)


class PolicyConnection(aioice.ice.Connection):
    """aioice's ICE connection, with host candidates on the policy's addresses and ports."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.policy = _current_policy.get()

    async def add_remote_candidate(self, remote_candidate) -> None:
        # A node whose host candidates are all loopback cannot reach other addresses: not trying
        # them keeps a loopback-only node's checks on loopback.
        policy = self.policy
        if remote_candidate is not None and policy is not None and policy.loopback_only:
            try:
                if not ipaddress.ip_address(remote_candidate.host).is_loopback:
                    return
            except ValueError:
                return  # an mDNS name: it stands for some interface address, not loopback
        await super().add_remote_candidate(remote_candidate)

    async def get_component_candidates(self, component: int, addresses: list[str], timeout: int = 5) -> list:
        policy = self.policy
        if policy is None:
            return await super().get_component_candidates(component, addresses, timeout)
        if policy.host_addresses:
            addresses = list(policy.host_addresses)
        if not policy.port_min:
            return await super().get_component_candidates(component, addresses, timeout)
        # A port range: bind the host sockets here, then let aioice add relayed candidates.
        candidates = []
        for address in addresses:
            protocol = await self._bind_in_range(address, policy)
            if protocol is None:
                continue
            host, port = protocol.transport.get_extra_info("sockname")[:2]
            protocol.local_candidate = aioice.Candidate(
                foundation=aioice.candidate.candidate_foundation("host", "udp", host),
                component=component,
                transport="udp",
                priority=aioice.candidate.candidate_priority(component, "host"),
                host=host,
                port=port,
                type="host",
            )
            self._protocols.append(protocol)
            candidates.append(protocol.local_candidate)
            if self.stun_server and ipaddress.ip_address(host).version == 4:
                try:
                    reflexive, _ = await asyncio.wait_for(
                        aioice.ice.server_reflexive_candidate(protocol, self.stun_server), timeout
                    )
                    candidates.append(reflexive)
                except (TimeoutError, OSError, aioice.stun.TransactionFailed) as error:
                    logger.info("no server-reflexive candidate for %s: %r", host, error)
        candidates += await super().get_component_candidates(component, [], timeout)
        return candidates

    async def _bind_in_range(self, address: str, policy: IcePolicy):
        loop = asyncio.get_running_loop()
        for port in policy.ports():
            try:
                _, protocol = await loop.create_datagram_endpoint(
                    lambda: aioice.ice.StunProtocol(self), local_addr=(address, port)
                )
            except OSError:
                continue
            sock = protocol.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
            return protocol
        logger.warning("no free UDP port on %s in %s-%s", address, policy.port_min, policy.port_max)
        return None


def install() -> None:
    """Make aiortc's ICE gatherers use `PolicyConnection` (idempotent)."""
    aiortc.rtcicetransport.Connection = PolicyConnection


def parse_port_range(text: str) -> tuple[int, int]:
    """``"40000-40999"`` → (40000, 40999); ``""`` → (0, 0), any port. Raises ValueError otherwise."""
    text = text.strip()
    if not text:
        return 0, 0
    low, separator, high = text.partition("-")
    try:
        port_min, port_max = int(low), int(high if separator else low)
    except ValueError:
        raise ValueError(f"ICE port range must look like 40000-40999, not {text!r}") from None
    if not 0 < port_min <= port_max <= 65535:
        raise ValueError(f"bad ICE port range {text!r}")
    return port_min, port_max


def policy_from_settings(
    addresses: list[str], ports: str, servers: list[str], turn_username: str = "", turn_credential: str = ""
) -> IcePolicy:
    """The policy of the engine's settings: TURN servers get the TURN credentials, STUN ones none."""
    port_min, port_max = parse_port_range(ports)
    ice_servers = []
    for url in (server.strip() for server in servers):
        if not url:
            continue
        if url.startswith(("turn:", "turns:")):
            ice_servers.append(IceServer((url,), turn_username or None, turn_credential or None))
        elif url.startswith(("stun:", "stuns:")):
            ice_servers.append(IceServer((url,)))
        else:
            raise ValueError(f"ICE server URLs start with stun: or turn:, not {url!r}")
    return IcePolicy(tuple(a.strip() for a in addresses if a.strip()), port_min, port_max, tuple(ice_servers))
