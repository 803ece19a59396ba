"""The engine node's side of the origin-edge cluster: the `locate` callback of an edge node (where
to pull a stream it does not hold, starting a CDN profile's transcode for ``{stream}-{profile}``)
and its routes written back from the mirrors it runs (`media_engine.relay.mirror`)."""

from __future__ import annotations

import asyncio
import logging
import time

from asgiref.sync import sync_to_async

from apps.cdn import services
from apps.cdn.services import Holder, MirrorState, TranscodeRefused
from media_engine.registry import StreamKey

logger = logging.getLogger(__name__)

# How often an edge looks for a CDN profile's rendition while its transcode starts.
TRANSCODE_POLL = 0.25


class EdgeLocator:
    """``locate`` of an edge node: the holder of a stream of the cluster (its origin, or the node a
    CDN profile's transcode publishes to), None at once for a stream no node holds. An edge run as
    several worker processes asks ``siblings`` first (`DatabaseControlPlane.locate`): the worker that
    pulls the stream for the edge, when it is not this one, is where this one mirrors it from."""

    def __init__(self, node_id: str, transcode_wait: float, source_type=Holder, siblings=None) -> None:
        self.node_id = node_id
        self.transcode_wait = transcode_wait
        self.source_type = source_type  # media_engine.relay.mirror.RemoteSource (same fields as Holder)
        self.siblings = siblings  # media_engine.relay.mirror.Locate over the sibling workers, or None

    def _source(self, holder: Holder):
        return self.source_type(url=holder.url, origin=holder.origin, http_base=holder.http_base)

    async def __call__(self, key: StreamKey):
        if self.siblings is not None:
            sibling = await self.siblings(key)
            if sibling is not None:
                return sibling
        args = (self.node_id, key.vhost, key.app, key.name)
        holder = await sync_to_async(services.locate)(*args)
        if holder is not None:
            return self._source(holder)
        try:
            started = await sync_to_async(services.start_profile_transcode)(*args)
        except TranscodeRefused as error:
            logger.info("edge %s: %s not transcoded: %s", self.node_id, key, error)
            return None
        if not started:
            return None
        # The rendition goes live once the worker has decoded and encoded its first frames: on
        # another node (pulled from there), or published here (no pull: the mirrors take the local stream).
        deadline = time.monotonic() + self.transcode_wait
        while time.monotonic() < deadline:
            await asyncio.sleep(TRANSCODE_POLL)
            holder = await sync_to_async(services.locate)(*args)
            if holder is not None:
                return self._source(holder)
            if await sync_to_async(services.live_on)(*args):
                return None
        logger.warning("edge %s: the rendition %s did not start within %g s", self.node_id, key, self.transcode_wait)
        return None


def mirror_states(mirrors) -> list[MirrorState]:
    """The engine's `MirrorInfo` list as route rows need it."""
    return [
        MirrorState(
            vhost=info.key.vhost,
            app=info.key.app,
            name=info.key.name,
            origin=info.origin,
            started_at=info.started_at,
            viewers=info.viewers,
            bytes_in=info.bytes_in,
            state=str(getattr(info.state, "value", info.state)),
        )
        for info in mirrors
    ]
