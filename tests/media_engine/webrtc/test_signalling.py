"""WHIP/WHEP signalling on the media port: offers answered with 201, SDP and a Location; bad input
refused with a plain-text status and nothing changed; ICE candidates on the policy's address and ports."""

from __future__ import annotations

import asyncio

import aiohttp
import yarl
from aiortc import RTCPeerConnection, RTCSessionDescription

from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.http.limits import HttpLimits
from media_engine.node import EngineNode, NodeAddresses, NodeLimits
from media_engine.registry import StreamKey
from media_engine.webrtc.ice import IcePolicy, policy_from_settings
from media_engine.webrtc.service import WebRtcSettings
from tests.media_engine.webrtc.conftest import LOOPBACK_ICE, start_node

SDP = {"Content-Type": "application/sdp"}


async def browser_like_offer(kinds=("video", "audio"), direction="recvonly") -> tuple[RTCPeerConnection, str]:
    """An aiortc offer as a WHEP/WHIP client sends it (host candidates on loopback)."""
    from media_engine.webrtc.ice import use_policy

    pc = RTCPeerConnection(IcePolicy(host_addresses=("127.0.0.1",)).rtc_configuration())
    with use_policy(IcePolicy(host_addresses=("127.0.0.1",))):
        for kind in kinds:
            pc.addTransceiver(kind, direction=direction)
        await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


def candidates(sdp: str) -> list[tuple[str, int]]:
    found = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            found.append((fields[4], int(fields[5])))
    return found


def test_bad_offers_are_refused_and_change_nothing():
    async def main() -> None:
        node = await start_node()
        base = f"http://127.0.0.1:{node.http.port}"
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{base}/app/s?direction=sideways", data="v=0", headers=SDP) as response:
                    assert response.status == 400 and "direction" in await response.text()
                async with http.post(f"{base}/app/s?direction=whip", data="v=0", headers={"Content-Type": "text/plain"}) as response:  # fmt: skip
                    assert response.status == 415
                async with http.post(f"{base}/app/s?direction=whip", data="hello", headers=SDP) as response:
                    assert response.status == 400 and "not an SDP offer" in await response.text()
                async with http.post(f"{base}/app/s?direction=whip", data="v=0\r\nm=video 9 x 1\r\n", headers=SDP) as response:  # fmt: skip
                    assert response.status == 400
                async with http.post(f"{base}/nope/s?direction=whep", data="v=0\r\nm=video\r\n", headers=SDP) as response:  # fmt: skip
                    assert response.status == 404 and await response.text() == "application not found\n"
                pc, offer = await browser_like_offer()
                async with http.post(f"{base}/app/offline?direction=whep", data=offer, headers=SDP) as response:
                    assert response.status == 404 and await response.text() == "stream not found\n"
                await pc.close()
                async with http.delete(f"{base}/app/s/webrtc-session/unknown") as response:
                    assert response.status == 404
                async with http.get(f"{base}/webrtc/static/..%2Fservice.py") as response:
                    assert response.status == 404
            assert node.registry.streams() == [] and node.webrtc.sessions == {}
        finally:
            await node.stop()

    asyncio.run(main())


def test_refused_whip_offers_leave_no_stream_and_no_event():
    """An offer answered 400 (no usable codec, SDP aiortc cannot take, a bad stream name) never opens a
    stream: no started/ended event, hence no Stream row and no WebSocket event on the Django side."""

    async def main() -> None:
        node = await start_node()
        events: list[str] = []
        node.registry.on_started(lambda stream: events.append(f"started {stream.key.name}"))
        node.registry.on_ended(lambda stream: events.append(f"ended {stream.key.name}"))
        base = f"http://127.0.0.1:{node.http.port}"
        _, good = await browser_like_offer(direction="sendonly")
        av1_only = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
        av1_only += "c=IN IP4 0.0.0.0\r\na=rtpmap:96 AV1/90000\r\na=sendonly\r\n"
        refused = [
            ("/app/cam?direction=whip", av1_only, "neither H264 nor VP8"),
            ("/app/cam?direction=whip", "v=0\r\nm=video 9 x 1\r\n", ""),
            ("/app/cam?direction=whip", good.replace("a=ice-ufrag:", "a=ice-ufrag-broken:"), ""),
            ("/app/%2E%2E?direction=whip", good, "invalid stream name '..'"),
            ("/app/a%2Fb?direction=whip", good, "invalid stream name 'a/b'"),
            ("/app/..%2F..%2Fx?direction=whip", good, "invalid stream name '../../x'"),
            (f"/app/{'x' * 5000}?direction=whip", good, "(5000 chars)"),
            ("/app/%2E%2E?direction=whep", good, "invalid stream name"),
        ]
        try:
            async with aiohttp.ClientSession() as http:
                for path, offer, text in refused:
                    url = yarl.URL(f"{base}{path}", encoded=True)
                    async with http.post(url, data=offer, headers=SDP) as response:
                        body = await response.text()
                        assert response.status == 400, (path, response.status, body)
                        assert text in body, (path, body)
                # The same name with a good offer is then free to publish.
                async with http.post(f"{base}/app/cam?direction=whip", data=good, headers=SDP) as response:
                    assert response.status == 201
            # The good offer opened "cam"; it starts (an event) once its media's tracks are known.
            assert events == []
            assert list(node.webrtc.sessions.values())[0].stream.key.name == "cam"
            assert node.registry.get(StreamKey("default", "app", "cam")) is not None
        finally:
            await node.stop()

    asyncio.run(main())


def test_a_whip_offer_is_answered_on_the_configured_address_and_port_range():
    async def main() -> None:
        policy = policy_from_settings(["127.0.0.1"], "42100-42120", [])
        node = await start_node(policy)
        base = f"http://127.0.0.1:{node.http.port}"
        try:
            pc, offer = await browser_like_offer(direction="sendonly")
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{base}/app/cam?direction=whip", data=offer, headers=SDP) as response:
                    assert response.status == 201
                    assert response.headers["Content-Type"] == "application/sdp"
                    location = response.headers["Location"]
                    answer = await response.text()
                assert location.startswith("/app/cam/webrtc-session/")
                found = candidates(answer)
                assert found and all(host == "127.0.0.1" and 42100 <= port <= 42120 for host, port in found)
                assert "H264" in answer and "opus" in answer and "VP8" not in answer  # H.264 preferred
                # The stream is claimed at once: a second publisher is refused.
                async with http.post(f"{base}/app/cam?direction=whip", data=offer, headers=SDP) as response:
                    assert response.status == 409
                await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
                # Trickle ICE: a further candidate of the client is taken (204); a malformed one is a 400.
                fragment = "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n"
                headers = {"Content-Type": "application/trickle-ice-sdpfrag"}
                async with http.patch(f"{base}{location}", data=fragment, headers=headers) as response:
                    assert response.status == 204
                async with http.patch(f"{base}{location}", data="a=candidate:x\r\n", headers=headers) as response:
                    assert response.status == 400
                assert node.registry.get(StreamKey("default", "app", "cam")) is not None
                async with http.delete(f"{base}{location}") as response:
                    assert response.status == 200
                assert node.registry.get(StreamKey("default", "app", "cam")) is None
                assert node.webrtc.sessions == {}
            await pc.close()
        finally:
            await node.stop()

    asyncio.run(main())


def test_settings_are_checked():
    policy = policy_from_settings(
        ["127.0.0.1"], "40000-40010", ["stun:127.0.0.1:3478", "turn:127.0.0.1:3478"], "u", "p"
    )
    assert (policy.port_min, policy.port_max) == (40000, 40010)
    assert [s.public_dict() for s in policy.ice_servers] == [
        {"urls": ["stun:127.0.0.1:3478"]},
        {"urls": ["turn:127.0.0.1:3478"], "username": "u", "credential": "p"},
    ]
    assert policy_from_settings([], "", []).rtc_configuration().iceServers == []  # never Google's STUN
    for ports in ("40010-40000", "abc", "0-10"):
        try:
            policy_from_settings([], ports, [])
        except ValueError:
            continue
        raise AssertionError(f"{ports} accepted")
    for bad in ((["not-an-ip"], "", []), ([], "", ["http://x"])):
        try:
            policy_from_settings(*bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_an_offer_body_is_read_whole_but_not_waited_for_beyond_the_header_timeout():
    async def main() -> None:
        config = ApplicationConfig("default", "app")
        limits = NodeLimits(http=HttpLimits(header_timeout=1.0))
        node = EngineNode(
            StaticControlPlane([config]), NodeAddresses("127.0.0.1", 0, "127.0.0.1", 0),
            WebRtcSettings(ice=LOOPBACK_ICE), limits=limits,
        )  # fmt: skip
        await node.start()
        try:
            _, offer = await browser_like_offer(direction="sendonly")
            body = offer.encode()

            async def post(path: str, pieces: list[bytes], pause: float, length: int) -> bytes:
                reader, writer = await asyncio.open_connection("127.0.0.1", node.http.port)
                writer.write(
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\n"
                    f"Content-Length: {length}\r\n\r\n".encode()
                )
                for piece in pieces:
                    writer.write(piece)
                    await asyncio.sleep(pause)
                answer = await asyncio.wait_for(reader.readline(), 5)
                writer.close()
                return answer

            # A body in two pieces 0.3 s apart is one offer, answered.
            half = len(body) // 2
            assert await post("/app/cam?direction=whip", [body[:half], body[half:]], 0.3, len(body)) == (
                b"HTTP/1.1 201 Created\r\n"
            )
            # A body that stops half-way is given up on after the header timeout: 408, nothing opened.
            started = asyncio.get_running_loop().time()
            answer = await post("/app/other?direction=whip", [body[:half]], 0, len(body))
            assert answer == b"HTTP/1.1 408 Request Timeout\r\n"
            assert asyncio.get_running_loop().time() - started < 3
            # (Opened, not started: the stream starts once its media's tracks are known.)
            assert node.registry.get(StreamKey("default", "app", "cam")) is not None
            assert node.registry.get(StreamKey("default", "app", "other")) is None
        finally:
            await node.stop()

    asyncio.run(main())
