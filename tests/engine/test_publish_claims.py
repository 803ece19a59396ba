"""Publish claims (apps.engine.claims): one node at a time takes a stream key; a dead node's claim is
taken over; a node keeps its claim while any of its sessions holds it."""

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.engine.claims import PublishClaims, claim_key, release_all
from apps.engine.models import EngineNode, PublishClaim
from media_engine.registry import StreamKey

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
KEY = StreamKey("default", "app", "live")


def node(name: str) -> EngineNode:
    return EngineNode.objects.create(node_id=name, hostname=name, rtmp_port=1935, media_http_port=3333)


def test_an_alive_node_keeps_its_key_and_a_dead_nodes_key_is_taken_over():
    first, second = node("n.0"), node("n.1")
    assert claim_key(first, KEY)
    assert claim_key(first, KEY)  # its own: its registry decides between its sessions
    assert not claim_key(second, KEY)
    assert claim_key(second, StreamKey("default", "app", "other"))
    EngineNode.objects.filter(pk=first.pk).update(last_heartbeat=timezone.now() - timedelta(minutes=5))
    assert claim_key(second, KEY)
    assert PublishClaim.objects.get(name="live").node == second
    release_all(second)
    assert not PublishClaim.objects.exists()


def test_the_claim_goes_with_the_last_session_of_the_node():
    first, second = node("n.0"), node("n.1")

    async def scenario():
        claims, others = PublishClaims(first), PublishClaims(second)
        assert await claims.claim(KEY) and await claims.claim(KEY)  # two sessions of one node
        claims.release(KEY)
        await asyncio.sleep(0.1)
        assert not await others.claim(KEY)  # still held by the other session
        claims.release(KEY)
        # A new session of the same node claims at once: the release under way does not delete it.
        assert await claims.claim(KEY)
        await asyncio.gather(*claims._releases)
        assert not await others.claim(KEY)
        claims.release(KEY)
        await asyncio.gather(*claims._releases)
        assert await others.claim(KEY)

    asyncio.run(scenario())
    assert PublishClaim.objects.get(name="live").node == second
