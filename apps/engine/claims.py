"""Publish claims: one engine node (or worker process) at a time may take a publish of a stream key.

Each node's registry refuses a second publish of a key it holds, but two publishes of one key landing
at the same moment on two nodes (two worker processes behind one SO_REUSEPORT port in particular)
would both pass it. Before it opens a publish, a node claims the key (`PublishClaim`, unique per
key): an INSERT, or, over a claim of a node that stopped heartbeating, a compare-and-swap UPDATE, so
exactly one of two racing nodes wins in the database. The node keeps the claim while any of its
sessions holds it and deletes it when the last one lets go.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.engine.models import EngineNode, PublishClaim
from media_engine.registry import StreamKey

logger = logging.getLogger(__name__)

# An INSERT that lost to another node's, then a claim gone again before we read it: ask again.
CLAIM_ATTEMPTS = 3


def claim_key(node: EngineNode, key: StreamKey) -> bool:
    """Claim ``key`` for ``node``: True if it is ``node``'s now (or was already), False if an alive
    node holds it."""
    where = {"vhost": key.vhost, "app": key.app, "name": key.name}
    for _ in range(CLAIM_ATTEMPTS):
        claim = PublishClaim.objects.filter(**where).select_related("node").first()
        if claim is None:
            try:
                with transaction.atomic():
                    PublishClaim.objects.create(node=node, **where)
                return True
            except IntegrityError:  # another node inserted it first: read whose it is
                continue
        if claim.node_id == node.pk:
            return True  # this node's registry decides between its own sessions
        if claim.node.is_alive:
            return False
        # The holder stopped heartbeating: take the claim over unless another node just did.
        if PublishClaim.objects.filter(pk=claim.pk, node_id=claim.node_id).update(node=node, claimed_at=timezone.now()):
            return True
    return False


def release_key(node: EngineNode, key: StreamKey) -> None:
    PublishClaim.objects.filter(node=node, vhost=key.vhost, app=key.app, name=key.name).delete()


def release_all(node: EngineNode) -> None:
    """A node that starts (again) or stops holds nothing."""
    PublishClaim.objects.filter(node=node).delete()


class PublishClaims:
    """One node's claims, counted per key: every session whose `claim` returned True calls `release`
    once; the row goes when the last one does. Claims and releases of one key run one at a time, so a
    release never deletes a claim that a newer session of this node has just counted on."""

    def __init__(self, node: EngineNode) -> None:
        self.node = node
        self._holders: dict[StreamKey, int] = {}
        self._locks: dict[StreamKey, asyncio.Lock] = {}
        self._releases: set[asyncio.Task] = set()

    def _lock(self, key: StreamKey) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _forget_lock(self, key: StreamKey, lock: asyncio.Lock) -> None:
        if not self._holders.get(key) and not lock.locked() and self._locks.get(key) is lock:
            del self._locks[key]

    async def claim(self, key: StreamKey) -> bool:
        """True if this node may open a publish of ``key`` (then call `release` once, whatever happens).
        A caller cancelled meanwhile (its connection went) leaves no claim behind."""
        task = asyncio.ensure_future(self._claim(key))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda done: self._release_unwanted(key, done))
            raise

    def _release_unwanted(self, key: StreamKey, done: asyncio.Future) -> None:
        if not done.cancelled() and done.exception() is None and done.result():
            self.release(key)

    async def _claim(self, key: StreamKey) -> bool:
        lock = self._lock(key)
        async with lock:
            if self._holders.get(key):
                taken = True  # held by another session of this node: its registry decides
            else:
                taken = await sync_to_async(claim_key)(self.node, key)
            if taken:
                self._holders[key] = self._holders.get(key, 0) + 1
        self._forget_lock(key, lock)
        return taken

    def release(self, key: StreamKey) -> None:
        """A session that claimed ``key`` is done with it (returns at once; the row goes in the background)."""
        count = self._holders.get(key, 0) - 1
        if count > 0:
            self._holders[key] = count
            return
        self._holders.pop(key, None)
        task = asyncio.get_running_loop().create_task(self._delete(key))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _delete(self, key: StreamKey) -> None:
        lock = self._lock(key)
        async with lock:
            if not self._holders.get(key):  # (unless a new session claimed it meanwhile)
                try:
                    await sync_to_async(release_key)(self.node, key)
                except Exception:  # noqa: BLE001 - the node's next start, or its silence, frees it
                    logger.exception("releasing the publish claim of %s failed", key)
        self._forget_lock(key, lock)
