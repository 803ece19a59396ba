"""aiortc to aiortc between two engine nodes on different ports: node B pulls node A's stream from
its WHEP URL, then pushes it back to node A's WHIP URL; ffprobe reads each result over RTMP."""

from __future__ import annotations

import asyncio

import pytest

from media_engine.registry import StreamAlreadyLive, StreamKey
from media_engine.webrtc.relay import RelayStatus
from tests.media_engine.webrtc.conftest import ffmpeg_publish, ffprobe_streams, start_node, wait_until


def test_pull_from_whep_and_push_to_whip_between_two_nodes():
    async def main() -> None:
        origin, edge = await start_node(), await start_node()
        assert origin.http.port != edge.http.port
        publisher = ffmpeg_publish(f"rtmp://127.0.0.1:{origin.rtmp.port}/app/source")
        statuses: list[tuple[str, RelayStatus]] = []

        def on_status(relay, status, error):
            statuses.append((relay.id, status))

        try:
            await wait_until(lambda: origin.registry.get(StreamKey("default", "app", "source")), 20)
            whep = f"http://127.0.0.1:{origin.http.port}/app/source"
            pulled = StreamKey("default", "app", "pulled")
            relay = await edge.webrtc.start_pull("pull-1", pulled, whep, on_status)
            await wait_until(lambda: relay.status is RelayStatus.PUBLISHING, 20)
            stream = edge.registry.get(pulled)
            assert stream is not None and stream.source == "webrtc"
            await wait_until(lambda: stream.video_config is not None and stream.audio_config is not None, 20)
            # The origin counts the edge as a WebRTC viewer.
            assert origin.registry.get(StreamKey("default", "app", "source")).counters.connections["webrtc"] == 1

            probe = await ffprobe_streams(f"rtmp://127.0.0.1:{edge.rtmp.port}/app/pulled")
            assert (probe["video"]["codec_name"], probe["video"]["width"], probe["video"]["height"]) == (
                "h264",
                320,
                240,
            )
            assert (probe["audio"]["codec_name"], probe["audio"]["sample_rate"]) == ("aac", "48000")

            # A second pull into the same name is refused.
            with pytest.raises(StreamAlreadyLive):
                await edge.webrtc.start_pull("pull-2", pulled, whep)

            # Push the pulled stream back to the origin under another name, over WHIP.
            push = await edge.webrtc.start_push(
                "push-1", pulled, f"http://127.0.0.1:{origin.http.port}/app/returned", on_status
            )
            await wait_until(lambda: push.status is RelayStatus.PUBLISHING, 20)
            probe = await ffprobe_streams(f"rtmp://127.0.0.1:{origin.rtmp.port}/app/returned")
            assert (probe["video"]["codec_name"], probe["video"]["width"]) == ("h264", 320)
            assert probe["audio"]["codec_name"] == "aac"

            # Stopping the push ends the origin's WHIP session (DELETE on its Location) and its stream.
            assert await edge.webrtc.stop_relay("push-1")
            await wait_until(lambda: origin.registry.get(StreamKey("default", "app", "returned")) is None, 10)
            assert await edge.webrtc.stop_relay("pull-1")
            assert edge.registry.get(pulled) is None
            await wait_until(lambda: origin.webrtc.count("whep") == 0, 10)
            assert ("pull-1", RelayStatus.STOPPED) in statuses and ("push-1", RelayStatus.STOPPED) in statuses
            assert not await edge.webrtc.stop_relay("pull-1")
        finally:
            publisher.kill()
            await edge.stop()
            await origin.stop()

    asyncio.run(main())


def test_a_pull_of_a_stream_that_is_not_live_fails_and_frees_the_name():
    async def main() -> None:
        origin, edge = await start_node(), await start_node()
        try:
            key = StreamKey("default", "app", "nothing")
            with pytest.raises(ConnectionError, match="404"):
                await edge.webrtc.start_pull("p", key, f"http://127.0.0.1:{origin.http.port}/app/missing")
            assert edge.registry.get(key) is None and not edge.webrtc.relays
            with pytest.raises(ValueError):
                await edge.webrtc.start_pull("p", key, "rtmp://127.0.0.1/app/missing")
            assert edge.registry.get(key) is None
            with pytest.raises(LookupError):
                await edge.webrtc.start_push("q", key, f"http://127.0.0.1:{origin.http.port}/app/x")
        finally:
            await edge.stop()
            await origin.stop()

    asyncio.run(main())


@pytest.mark.django_db
def test_a_pull_from_a_refused_address_never_reaches_it_and_frees_the_name(settings):
    # The engine checks too (a relay row made before the allow-list changed): the default refuses loopback,
    # by address and by a name that resolves to it, although a real node answers there.
    settings.OUTBOUND_ALLOW = []

    async def main() -> None:
        origin, edge = await start_node(), await start_node()
        try:
            key = StreamKey("default", "app", "pulled")
            for url in (f"http://127.0.0.1:{origin.http.port}/app/x", f"http://localhost:{origin.http.port}/app/x"):
                with pytest.raises(ValueError, match="loopback address"):
                    await edge.webrtc.start_pull("p", key, url)
                assert edge.registry.get(key) is None and not edge.webrtc.relays
        finally:
            await edge.stop()
            await origin.stop()

    asyncio.run(main())
