"""WHIP offers and WHEP pulls claim their key through the control plane before the stream opens
(`media_engine.control.claim_publish`, as RTMP and SRT publishes do): a key another node holds is refused
as a live one (409 / StreamAlreadyLive) with nothing opened, and the claim goes when the session or the
relay ends, so the key can be published again."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from media_engine.control import StaticControlPlane
from media_engine.registry import StreamAlreadyLive, StreamKey
from tests.media_engine.webrtc.conftest import APPLICATION, start_node, wait_until
from tests.media_engine.webrtc.test_signalling import SDP, browser_like_offer


class ClaimingControlPlane(StaticControlPlane):
    """A control plane with claims (apps.engine's is the database's): ``elsewhere`` are keys another node
    holds; every claim taken and released is counted."""

    def __init__(self) -> None:
        super().__init__([APPLICATION])
        self.elsewhere: set[StreamKey] = set()
        self.held: dict[StreamKey, int] = {}

    async def claim_publish(self, key: StreamKey) -> bool:
        if key in self.elsewhere:
            return False
        self.held[key] = self.held.get(key, 0) + 1
        return True

    def release_publish(self, key: StreamKey) -> None:
        self.held[key] -= 1


def test_a_whip_offer_of_a_key_another_node_claims_is_refused_and_its_own_claim_goes_with_the_session():
    async def main() -> None:
        control = ClaimingControlPlane()
        node = await start_node(control=control)
        base = f"http://127.0.0.1:{node.http.port}"
        taken, free = StreamKey("default", "app", "taken"), StreamKey("default", "app", "free")
        control.elsewhere.add(taken)
        pc, offer = await browser_like_offer(direction="sendonly")
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{base}/app/taken?direction=whip", data=offer, headers=SDP) as response:
                    assert (response.status, await response.text()) == (409, "stream is already live\n")
                assert node.registry.get(taken) is None and node.webrtc.sessions == {}
                async with http.post(f"{base}/app/free?direction=whip", data=offer, headers=SDP) as response:
                    assert response.status == 201
                    location = response.headers["Location"]
                assert control.held == {free: 1} and node.registry.get(free) is not None
                # A refused offer of a claimed key (the registry's refusal) gives its claim back at once.
                async with http.post(f"{base}/app/free?direction=whip", data=offer, headers=SDP) as response:
                    assert response.status == 409
                assert control.held == {free: 1}
                async with http.delete(f"{base}{location}") as response:
                    assert response.status == 200
                await wait_until(lambda: control.held == {free: 0}, 5)
                assert node.registry.get(free) is None
        finally:
            await pc.close()
            await node.stop()

    asyncio.run(main())


def test_a_whep_pull_into_a_key_another_node_claims_is_refused_and_a_failed_pull_gives_its_claim_back():
    async def main() -> None:
        control = ClaimingControlPlane()
        node = await start_node(control=control)
        key = StreamKey("default", "app", "pulled")
        try:
            control.elsewhere.add(key)
            with pytest.raises(StreamAlreadyLive):
                await node.webrtc.start_pull("p", key, f"http://127.0.0.1:{node.http.port}/app/source")
            assert node.registry.get(key) is None and not node.webrtc.relays and control.held == {}
            control.elsewhere.clear()
            with pytest.raises(ConnectionError, match="404"):  # (nothing to pull there)
                await node.webrtc.start_pull("p", key, f"http://127.0.0.1:{node.http.port}/app/source")
            assert node.registry.get(key) is None and control.held == {key: 0}
        finally:
            await node.stop()

    asyncio.run(main())
