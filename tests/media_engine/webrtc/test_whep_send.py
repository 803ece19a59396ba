"""What a WHEP viewer's peer gets from the engine's own send path (`rtp_send.FrameSender`): the
stream's frames with the header extensions it negotiated, sender reports with the counts sent, and
the packets it reports lost (NACK) sent again in RTX; when the stream ends the session closes. The
viewer is aiortc in the test's process."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from media_engine.registry import StreamKey
from media_engine.webrtc import passthrough
from media_engine.webrtc.ice import use_policy
from media_engine.webrtc.rtp_send import BATCH_PACKETS
from tests.media_engine.webrtc.conftest import LOOPBACK_ICE, ffmpeg_publish, start_node, wait_until


def test_a_whep_viewer_gets_frames_sender_reports_rtx_for_what_it_reports_lost_and_an_end():
    async def main() -> None:
        node = await start_node()
        # 1280x720: keyframes of more packets than one batch of the send path (BATCH_PACKETS).
        publisher = ffmpeg_publish(f"rtmp://127.0.0.1:{node.rtmp.port}/app/source", size="1280x720")
        pc = RTCPeerConnection(LOOPBACK_ICE.rtc_configuration())
        try:
            await wait_until(lambda: node.registry.get(StreamKey("default", "app", "source")), 20)
            passthrough.install()
            with use_policy(LOOPBACK_ICE):
                video = pc.addTransceiver("video", direction="recvonly")
                audio = pc.addTransceiver("audio", direction="recvonly")
                await pc.setLocalDescription(await pc.createOffer())
            packets: dict[str, list] = {"video": [], "audio": []}  # RTP as it arrives (RTX not yet unwrapped)
            for transceiver in (video, audio):
                handle = transceiver.receiver._handle_rtp_packet

                async def record(packet, arrival_time_ms, handle=handle, kind=transceiver.kind):
                    packets[kind].append(packet)
                    await handle(packet, arrival_time_ms)

                transceiver.receiver._handle_rtp_packet = record
            frames = {"video": 0, "audio": 0}

            @pc.on("track")
            def on_track(track) -> None:
                passthrough.receive_encoded(track)

                async def read() -> None:
                    try:
                        while True:
                            await track.recv()
                            frames[track.kind] += 1
                    except MediaStreamError:
                        pass

                asyncio.ensure_future(read())

            url = f"http://127.0.0.1:{node.http.port}/app/source?direction=whep"
            async with aiohttp.ClientSession() as http:
                body = pc.localDescription.sdp
                async with http.post(url, data=body, headers={"Content-Type": "application/sdp"}) as response:
                    assert response.status == 201, await response.text()
                    answer = await response.text()
            with use_policy(LOOPBACK_ICE):
                await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

            # Whole frames of both kinds: 2 s of the 25 fps video, and Opus audio.
            await wait_until(lambda: frames["video"] >= 50 and frames["audio"] >= 50, 60)
            media = packets["video"][-1]
            stream = [p for p in packets["video"] if p.ssrc == media.ssrc]
            assert all(p.extensions.mid == video.mid for p in stream)
            assert all(p.extensions.abs_send_time is not None for p in stream)
            sequence = [p.sequence_number for p in stream]
            assert all((b - a) & 0xFFFF == 1 for a, b in zip(sequence, sequence[1:], strict=False))
            assert all(p.extensions.mid == audio.mid and p.marker for p in packets["audio"])
            # Frames went out in segmented (GSO) sends, keyframes in several batches, and arrived whole
            # (the consecutive sequence numbers above: every datagram, in order).
            per_frame = Counter(p.timestamp for p in stream)
            assert max(per_frame.values()) > BATCH_PACKETS
            # ...each frame's packets together, the marker bit on its last one only
            for before, after in zip(stream, stream[1:], strict=False):
                assert before.marker == (after.timestamp != before.timestamp)
            (session,) = node.webrtc.sessions.values()
            senders = [s._frame_sender for s in session.pc.getSenders() if s.kind == "video"]
            assert sum(sender.gso_sends for sender in senders) > 0
            assert all(sender.gso for sender in senders)

            # Sender reports (aiortc's RTCP task) carry the counts the engine's send path keeps.
            async def reported_sent() -> int:
                stats = await video.receiver.getStats()
                return max((s.packetsSent for s in stats.values() if s.type == "remote-outbound-rtp"), default=0)

            deadline = asyncio.get_running_loop().time() + 20
            while await reported_sent() < len(stream) // 2:
                assert asyncio.get_running_loop().time() < deadline, "no sender report with the packets sent"
                await asyncio.sleep(0.2)

            # A packet reported lost comes again in RTX: another SSRC, the original sequence number
            # in front of the same payload.
            lost = stream[-10]
            await video.receiver._send_rtcp_nack(media.ssrc, [lost.sequence_number])
            original = lost.sequence_number.to_bytes(2, "big")
            rtx = await wait_until(
                lambda: next((p for p in packets["video"] if p.ssrc != media.ssrc and p.payload[:2] == original), None),
                10,
            )
            assert rtx.payload[2:] == lost.payload and rtx.timestamp == lost.timestamp
            assert rtx.payload_type != media.payload_type

            # The stream ends: the engine closes the session, its senders stop (peer connection closed).
            assert len(node.webrtc.sessions) == 1
            publisher.kill()
            await wait_until(lambda: not node.webrtc.sessions, 30)
        finally:
            await pc.close()
            publisher.kill()
            publisher.wait()
            await node.stop()

    asyncio.run(main())
