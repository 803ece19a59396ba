"""Worker processes behind one port, as two nodes in one process: worker 1 proxies HLS requests for
the stream worker 0 holds to worker 0's private listener, with the client signed; worker 0 counts the
real client, and believes a client header only when its signature is good."""

from __future__ import annotations

import asyncio

import aiohttp

from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.http import siblings
from media_engine.http.siblings import CLIENT_HEADER, AudienceBook, SiblingProxy, sign_client, verify_client
from media_engine.node import EngineNode, NodeAddresses
from media_engine.registry import StreamKey
from media_engine.relay.mirror import RemoteSource
from media_engine.webrtc.service import WebRtcSettings
from tests.media_engine.webrtc.conftest import LOOPBACK_ICE, ffmpeg_publish, wait_until

SECRET = "sibling-secret"
KEY = StreamKey("default", "app", "held")


def test_a_signed_client_is_believed_for_its_request_only():
    value = sign_client(SECRET, "203.0.113.7", 51000, "GET", "/app/s/ts:playlist.m3u8", now=1000)
    assert verify_client(SECRET, value, "GET", "/app/s/ts:playlist.m3u8", now=1010) == ("203.0.113.7", 51000)
    assert verify_client("another-secret", value, "GET", "/app/s/ts:playlist.m3u8", now=1010) is None
    assert verify_client(SECRET, value, "GET", "/app/other/ts:playlist.m3u8", now=1010) is None
    assert verify_client(SECRET, value, "GET", "/app/s/ts:playlist.m3u8", now=1100) is None  # stale
    assert verify_client(SECRET, value.replace("203.0.113.7", "198.51.100.1"), "GET", "/app/s/ts:playlist.m3u8",
                         now=1010) is None  # fmt: skip
    assert verify_client(SECRET, "garbage", "GET", "/", now=1010) is None


def _node(proxy: SiblingProxy) -> EngineNode:
    config = ApplicationConfig("default", "app", hls_segment_duration=1.0, hls_segment_count=5)
    addresses = NodeAddresses("127.0.0.1", 0, "127.0.0.1", 0, private_host="127.0.0.1")
    return EngineNode(StaticControlPlane([config]), addresses, WebRtcSettings(ice=LOOPBACK_ICE), siblings=proxy)


def test_a_sibling_passes_hls_requests_to_the_holder_which_counts_the_real_client(monkeypatch):
    monkeypatch.setattr(siblings, "STREAM_ANSWERS_FROM", 1000)  # (segments are passed on piece by piece)

    async def main() -> None:
        holder: EngineNode | None = None

        async def locate(key: StreamKey) -> RemoteSource | None:
            if holder is None or holder.registry.get(key) is None:
                return None
            return RemoteSource("rtmp://unused", "worker-0", f"http://127.0.0.1:{holder.http.private_port}")

        async def nobody(key: StreamKey) -> RemoteSource | None:
            return None

        async def no_worker(tag: str) -> str | None:
            return None

        holder = _node(SiblingProxy(SECRET, nobody, no_worker, "0"))
        sibling = _node(SiblingProxy(SECRET, locate, no_worker, "1"))
        await holder.start()
        await sibling.start()
        publisher = ffmpeg_publish(f"rtmp://127.0.0.1:{holder.rtmp.port}/app/held", 30)
        try:
            await wait_until(lambda: (s := holder.registry.get(KEY)) is not None and s.ready, 20)
            async with aiohttp.ClientSession() as client:
                via_sibling = f"http://127.0.0.1:{sibling.http.port}/app/held/ts:playlist.m3u8"
                direct = f"http://127.0.0.1:{holder.http.port}/app/held/ts:playlist.m3u8"
                async with client.get(via_sibling, headers={"User-Agent": "via-sibling"}) as answer:
                    assert answer.status == 200
                    proxied = await answer.text()
                async with client.get(direct) as answer:
                    own = await answer.text()
                # One packager (the holder's): the same segments, none packaged by the sibling.
                segments = [line for line in proxied.splitlines() if line.endswith(".ts")]
                assert segments and segments[0] in own
                assert sibling.packager.watch(KEY) is None and sibling.registry.get(KEY) is None
                segment = f"http://127.0.0.1:{sibling.http.port}/app/held/{segments[-1]}"
                async with client.get(segment) as answer:
                    assert answer.status == 200 and answer.headers["Access-Control-Allow-Origin"] == "*"
                    passed_on = await answer.read()
                async with client.get(segment.replace(str(sibling.http.port), str(holder.http.port))) as answer:
                    assert len(passed_on) > 1000 and passed_on == await answer.read()

                # A forged client header straight to the holder is ignored (the peer counts as itself).
                forged = sign_client("wrong-secret", "203.0.113.9", 4000, "GET", "/app/held/ts:playlist.m3u8")
                headers = {CLIENT_HEADER: forged, "User-Agent": "forger"}
                async with client.get(direct, headers=headers) as answer:
                    assert answer.status == 200
                # A good signature (what a sibling sends) is believed: the viewer is the client it names.
                signed = sign_client(SECRET, "203.0.113.5", 4001, "GET", "/app/held/ts:playlist.m3u8")
                async with client.get(direct, headers={CLIENT_HEADER: signed, "User-Agent": "vouched"}) as answer:
                    assert answer.status == 200
                # An unknown stream is answered by the sibling itself.
                async with client.get(f"http://127.0.0.1:{sibling.http.port}/app/none/ts:playlist.m3u8") as answer:
                    assert answer.status == 404
            stream = holder.registry.get(KEY)
            viewers = {viewer.user_agent: viewer for viewer in holder.http.viewers.sessions(stream)}
            assert viewers["via-sibling"].address == "127.0.0.1"
            assert viewers["forger"].address == "127.0.0.1"  # not the forged 203.0.113.9
            assert all(viewer.address != "203.0.113.9" for viewer in viewers.values())
            assert (viewers["vouched"].address, viewers["vouched"].port) == ("203.0.113.5", 4001)
            assert sibling.siblings.proxied == 2
        finally:
            publisher.kill()
            publisher.wait()
            await sibling.stop()
            await holder.stop()

    asyncio.run(main())


def test_the_holder_counts_the_players_of_siblings_mirrors_instead_of_their_pulls():
    now = [100.0]
    book = AudienceBook(ttl=5.0, clock=lambda: now[0])
    book.report(KEY, "w1", {"rtmp": 3}, 1000)
    # Here: 2 players of our own and the mirror pull of w1.
    assert book.merged(KEY, {"rtmp": 3, "hls": 1}, 500) == ({"rtmp": 5, "hls": 1}, 1500)
    assert book.viewers_added(KEY) == 2  # (an edge's route: its mirror's viewers, w1's players in)
    now[0] = 106.0  # w1 stopped reporting (its mirror ended, or it died)
    assert book.merged(KEY, {"rtmp": 2}, 500) == ({"rtmp": 2}, 500)
    assert book.viewers_added(KEY) == 0
