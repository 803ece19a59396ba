"""The engine's one interface to the control plane (Django): application lookup and stream events.

`media_engine` never imports Django; `apps.engine` implements `ControlPlane` over the database,
and tests use `StaticControlPlane`.

A control plane shared by several nodes (or worker processes of one) also offers ``claim_publish``
and ``release_publish`` (`PublishClaiming`): every publish (RTMP, WHIP, SRT) claims its key through
`claim_publish` below before it opens the stream, so that of two publishes of one key at the same
moment on two nodes only one passes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from media_engine.admission import OPEN, AccessRules
from media_engine.registry import LiveStream, StreamAlreadyLive, StreamKey

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApplicationConfig:
    """What the engine needs to know about one application of one virtual host."""

    vhost: str
    app: str
    hls_segment_duration: float = 6.0
    hls_segment_count: int = 5
    # 0.2 s parts (whole frames at 25/30/50/60 fps) with PART-HOLD-BACK 0.6 s: under 1 s glass-to-glass.
    llhls_part_duration: float = 0.2
    llhls_segment_duration: float = 6.0
    llhls_segment_count: int = 10
    # Who may publish and play (signed policy, ACL keys, admission webhook); open by default.
    access: AccessRules = field(default=OPEN, compare=False)


class ControlPlane(Protocol):
    async def resolve_application(self, host: str, app: str) -> ApplicationConfig | None:
        """The application ``app`` of the virtual host matching ``host`` (a host name or IP), or None."""

    async def application_config(self, vhost: str, app: str) -> ApplicationConfig | None:
        """The application ``app`` of the virtual host named ``vhost``, or None."""

    async def stream_started(self, stream: LiveStream) -> None: ...

    async def stream_ended(self, stream: LiveStream) -> None: ...


class PublishClaiming(Protocol):
    async def claim_publish(self, key: StreamKey) -> bool:
        """True: this node may open a publish of ``key`` (`release_publish` follows once, whatever
        happens); False: another node holds or is taking it."""

    def release_publish(self, key: StreamKey) -> None:
        """The session that claimed ``key`` is done with it (returns at once)."""


class HeldClaim:
    """A publish's claim of its key: `release` it once the session is done with the key (once is
    enough; later calls do nothing). A claim of a control plane without claims holds nothing."""

    def __init__(self, control: PublishClaiming | None, key: StreamKey) -> None:
        self._control = control
        self.key = key

    def release(self) -> None:
        control, self._control = self._control, None
        if control is not None:
            control.release_publish(self.key)

    @contextlib.contextmanager
    def released_on_failure(self) -> Iterator[HeldClaim]:
        """Release the claim if the block raises: the publish it was taken for did not start."""
        try:
            yield self
        except BaseException:
            self.release()
            raise


async def claim_publish(control: ControlPlane, key: StreamKey, who: str) -> HeldClaim | None:
    """Claim ``key`` for a publish by ``who`` (``"rtmp 1.2.3.4:5678"``, for the log) across the nodes
    and worker processes sharing ``control``, before the stream is opened: the claim to release when
    the session ends, or None if another node holds or is taking the key (refuse the publish as one of
    a live key). Without claims in the control plane, or when asking fails (the database is down),
    the claim holds nothing and this node's registry decides alone."""
    claim = getattr(control, "claim_publish", None)
    if claim is None:
        return HeldClaim(None, key)
    try:
        taken = await claim(key)
    except Exception:  # noqa: BLE001 - the registry still refuses a key live on this node
        logger.exception("%s: claiming %s failed", who, key)
        return HeldClaim(None, key)
    if not taken:
        logger.info("%s: %s is already being published on another node", who, key)
        return None
    return HeldClaim(control, key)  # type: ignore[arg-type]


async def claim_or_refuse(control: ControlPlane, key: StreamKey, who: str) -> HeldClaim:
    """`claim_publish`, raising StreamAlreadyLive (as for a key live on this node) when another node
    holds or is taking ``key``."""
    claim = await claim_publish(control, key, who)
    if claim is None:
        raise StreamAlreadyLive(str(key))
    return claim


class StaticControlPlane:
    """A fixed set of applications (any host name matches); records stream events. For tests and tools."""

    def __init__(self, applications: list[ApplicationConfig]) -> None:
        self.applications = {config.app: config for config in applications}
        self.started: list[LiveStream] = []
        self.ended: list[LiveStream] = []

    async def resolve_application(self, host: str, app: str) -> ApplicationConfig | None:
        return self.applications.get(app)

    async def application_config(self, vhost: str, app: str) -> ApplicationConfig | None:
        config = self.applications.get(app)
        return config if config is not None and config.vhost == vhost else None

    async def stream_started(self, stream: LiveStream) -> None:
        self.started.append(stream)

    async def stream_ended(self, stream: LiveStream) -> None:
        self.ended.append(stream)
