"""Sessions against a scripted client: commands and their answers, publish/play, timeouts, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.names import InvalidStreamName
from media_engine.packets import MediaPacket, TrackKind
from media_engine.registry import LiveStream, StreamKey, StreamRegistry, Subscription
from media_engine.rtmp import amf0
from media_engine.rtmp.chunks import MessageType, RtmpLimits, UserControlEvent, parse_u32, parse_user_control
from media_engine.rtmp.server import RtmpServer

from .rtmp_client import FFMPEG_PUBLISH, RtmpTestClient, ffmpeg_publish_messages, running_server

KEY = StreamKey("default", "app", "stream")
MEDIA = [m for m in ffmpeg_publish_messages() if m.type_id in (8, 9, 18)]


def run(scenario: Callable[[], Coroutine[Any, Any, None]], timeout: float = 20.0) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout))


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def send_media(client: RtmpTestClient, stream_id: int, offset: int = 0, until: int | None = None) -> None:
    """The recorded ffmpeg media messages (metadata, configs, frames), timestamps shifted by ``offset``."""
    for m in MEDIA:
        if until is not None and m.timestamp >= until:
            continue
        csid = {8: 4, 9: 6, 18: 4}[m.type_id]
        timestamp = m.timestamp if m.type_id == 18 else m.timestamp + offset
        client.send(csid, m.type_id, stream_id, timestamp, m.payload)


def test_connect_sets_up_the_connection_and_succeeds():
    async def scenario():
        async with running_server() as server:
            client = await RtmpTestClient.open(server.port)
            reply = await client.connect("app")
            assert reply[:2] == ["_result", 1.0]
            assert reply[3]["code"] == "NetConnection.Connect.Success"
            controls = {m.type_id: m.payload for m in client.received if m.stream_id == 0 and m.csid == 2}
            assert parse_u32(controls[MessageType.WINDOW_ACK_SIZE]) == 2_500_000
            assert controls[MessageType.SET_PEER_BANDWIDTH] == (2_500_000).to_bytes(4, "big") + b"\x02"
            assert parse_u32(controls[MessageType.SET_CHUNK_SIZE]) == 4096
            assert client.chunks_in.chunk_size == 4096
            client.close()

    run(scenario)


def test_connect_to_an_unknown_application_is_rejected_and_closed():
    async def scenario():
        async with running_server(apps=("app",)) as server:
            client = await RtmpTestClient.open(server.port)
            reply = await client.connect("nope")
            assert reply[0] == "_error"
            assert reply[3]["code"] == "NetConnection.Connect.Rejected"
            await client.wait_closed()
            await eventually(lambda: not server.sessions)

    run(scenario)


def test_query_strings_are_stripped_from_the_app_and_the_stream_name():
    async def scenario():
        async with running_server() as server:
            client = await RtmpTestClient.open(server.port, signed=False)
            assert (await client.connect("app?token=1"))[0] == "_result"
            stream_id = await client.create_stream()
            status = await client.publish("stream?key=secret", stream_id)
            assert status["code"] == "NetStream.Publish.Start"
            assert server.registry.get(KEY) is not None
            client.close()
            await eventually(lambda: server.registry.get(KEY) is None)

    run(scenario)


def test_a_replayed_ffmpeg_publish_session_feeds_the_registry():
    async def scenario():
        async with running_server() as server:
            streams: list[LiveStream] = []
            packets: list[MediaPacket] = []
            ended = asyncio.Event()

            async def collect(subscription: Subscription) -> None:
                async for packet in subscription:
                    packets.append(packet)
                ended.set()

            def on_started(stream: LiveStream) -> None:
                streams.append(stream)
                tasks.append(asyncio.create_task(collect(stream.subscribe())))  # subscribed before any push

            tasks = []
            server.registry.on_started(on_started)
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            recording = FFMPEG_PUBLISH.read_bytes()
            writer.write(recording)  # C0+C1, C2 and the whole chunk stream, as ffmpeg sent them
            await asyncio.wait_for(ended.wait(), 5)  # FCUnpublish/deleteStream end the stream
            (stream,) = streams
            assert stream.key == KEY and stream.source == "rtmp" and stream.ended
            assert [(p.kind, p.config) for p in packets[:3]] == [
                (TrackKind.DATA, True),
                (TrackKind.VIDEO, True),
                (TrackKind.AUDIO, True),
            ]
            assert sum(p.kind is TrackKind.VIDEO for p in packets) == 51
            assert sum(p.kind is TrackKind.AUDIO for p in packets) == 89
            # Every byte from the publish command on is counted (the handshake and connect precede it).
            assert 0.9 * len(recording) < stream.counters.total_bytes_in <= len(recording)
            writer.close()

    run(scenario)


def test_amf3_commands_and_aggregate_messages_are_understood():
    async def scenario():
        async with running_server() as server:
            client = await RtmpTestClient.open(server.port)
            connect = amf0.encode("connect", 1.0, {"app": "app", "tcUrl": "rtmp://localhost/app"})
            client.send(3, MessageType.COMMAND_AMF3, 0, 0, b"\x00" + connect)
            assert (await client.read_command())[:2] == ["_result", 1.0]
            stream_id = await client.create_stream()
            assert (await client.publish("stream", stream_id))["code"] == "NetStream.Publish.Start"
            stream = server.registry.get(KEY)

            def tag(type_id: int, timestamp: int, body: bytes) -> bytes:
                header = bytes([type_id]) + len(body).to_bytes(3, "big") + timestamp.to_bytes(3, "big") + bytes(4)
                return header + body + (11 + len(body)).to_bytes(4, "big")

            aggregate = tag(9, 0, b"\x17\x00\x00\x00\x00avcC") + tag(9, 40, b"\x17\x01\x00\x00\x00frame")
            client.send(6, MessageType.AGGREGATE, stream_id, 1000, aggregate)
            await eventually(lambda: stream.gop)
            assert stream.video_config.payload == b"avcC"
            assert [(p.dts, p.payload) for p in stream.gop] == [(1040, b"frame")]
            client.close()

    run(scenario)


def test_a_second_publisher_of_a_live_name_gets_bad_name():
    async def scenario():
        async with running_server() as server:
            first = await RtmpTestClient.open(server.port)
            await first.start_publishing("stream")
            live = server.registry.get(KEY)

            second = await RtmpTestClient.open(server.port)
            assert (await second.connect())[0] == "_result"
            stream_id = await second.create_stream()
            status = await second.publish("stream", stream_id)
            assert (status["level"], status["code"]) == ("error", "NetStream.Publish.BadName")
            await second.wait_closed()

            assert server.registry.get(KEY) is live and not live.ended
            first.send(2, MessageType.USER_CONTROL, 0, 0, b"\x00\x06\x00\x00\x00\x2a")  # ping: still served
            while (message := await first.read_message()).type_id != MessageType.USER_CONTROL:
                pass
            assert parse_user_control(message.payload) == (UserControlEvent.PING_RESPONSE, b"\x00\x00\x00\x2a")
            first.close()

    run(scenario)


BAD_NAMES = ["..", ".", "a/b", "../../x", ".hidden", "x" * 5000, "sp ace", "a\\b"]


def test_publish_and_play_of_names_the_rule_refuses_are_refused_while_a_good_stream_goes_on():
    async def scenario():
        async with running_server() as server:
            good = await RtmpTestClient.open(server.port)
            good_id = await good.start_publishing("stream")
            send_media(good, good_id, until=500)
            await eventually(lambda: [stream.key for stream in server.registry.streams()] == [KEY])
            started: list[StreamKey] = []
            server.registry.on_started(lambda stream: started.append(stream.key))
            for name in BAD_NAMES:
                publisher = await RtmpTestClient.open(server.port)
                assert (await publisher.connect())[0] == "_result"
                status = await publisher.publish(name, await publisher.create_stream())
                assert (status["level"], status["code"]) == ("error", "NetStream.Publish.BadName"), name
                await publisher.wait_closed()

                player = await RtmpTestClient.open(server.port)
                assert (await player.connect())[0] == "_result"
                status = await player.play(name, await player.create_stream())
                assert (status["level"], status["code"]) == ("error", "NetStream.Play.StreamNotFound"), name
                await player.wait_closed()
            assert started == []
            assert [stream.key for stream in server.registry.streams()] == [KEY]

            # The good publisher is still served and its stream plays.
            player = await RtmpTestClient.open(server.port)
            assert (await player.connect())[0] == "_result"
            status = await player.play("stream", await player.create_stream())
            assert status["code"] == "NetStream.Play.Reset"
            good.close()
            player.close()

    run(scenario)


def test_the_registry_refuses_a_bad_name_from_any_entry():
    registry = StreamRegistry()
    for name in BAD_NAMES:
        try:
            registry.open(StreamKey("default", "app", name), "rtmp")
        except InvalidStreamName as error:
            assert "invalid stream name" in str(error)
        else:
            raise AssertionError(f"{name!r} was opened")
    assert registry.streams() == []


def test_play_of_an_unknown_stream_is_not_found():
    async def scenario():
        async with running_server() as server:
            client = await RtmpTestClient.open(server.port)
            assert (await client.connect())[0] == "_result"
            stream_id = await client.create_stream()
            status = await client.play("missing", stream_id)
            assert (status["level"], status["code"]) == ("error", "NetStream.Play.StreamNotFound")
            await client.wait_closed()

    run(scenario)


def test_a_player_gets_the_configuration_then_the_gop_with_timestamps_from_zero():
    async def scenario():
        async with running_server() as server:
            publisher = await RtmpTestClient.open(server.port)
            pub_id = await publisher.start_publishing("stream")
            send_media(publisher, pub_id, offset=100_000, until=1500)  # keyframes at 0 and 1000
            stream = server.registry.get(KEY)
            await eventually(lambda: stream.gop and stream.gop[0].dts == 101_000)

            player = await RtmpTestClient.open(server.port)
            assert (await player.connect())[0] == "_result"
            play_id = await player.create_stream()
            start = len(player.received)
            reset = await player.play("stream", play_id)
            assert reset["code"] == "NetStream.Play.Reset"
            assert (await player.read_command())[3]["code"] == "NetStream.Play.Start"
            await eventually(lambda: stream.counters.connections.get("rtmp") == 1)
            for _ in range(12):
                await player.read_message()
            messages = player.received[start:]

            begin = next(m for m in messages if m.type_id == MessageType.USER_CONTROL)
            assert parse_user_control(begin.payload) == (UserControlEvent.STREAM_BEGIN, play_id.to_bytes(4, "big"))
            data = [amf0.decode_all(m.payload)[0] for m in messages if m.type_id == MessageType.DATA_AMF0]
            assert data[:2] == ["|RtmpSampleAccess", "onMetaData"]
            media = [m for m in messages if m.type_id in (8, 9)]
            assert media[0].type_id == 9 and media[0].payload[:2] == b"\x17\x00"  # AVC sequence header
            assert media[1].type_id == 8 and media[1].payload[:2] == b"\xaf\x00"  # AAC sequence header
            keyframe = media[2]
            assert keyframe.payload[:2] == b"\x17\x01" and keyframe.timestamp == 0
            assert all(m.stream_id == play_id for m in media)
            assert all(m.timestamp < 600 for m in media)  # rebased: the cached GOP starts at 0

            # The publisher leaves: the player is told and disconnected.
            publisher.close()
            rest = await player.wait_closed()
            statuses = [amf0.decode_all(m.payload)[3]["code"] for m in rest if m.type_id == MessageType.COMMAND_AMF0]
            assert statuses[-2:] == ["NetStream.Play.UnpublishNotify", "NetStream.Play.Stop"]
            await eventually(lambda: stream.counters.connections.get("rtmp") == 0)
            assert stream.counters.max_total_connections == 1
            media_bytes = sum(len(m.payload) for m in player.received if m.type_id in (8, 9))
            assert media_bytes < stream.counters.total_bytes_out <= player.bytes_read

    run(scenario)


def test_acknowledgements_follow_the_window_the_peer_asked_for():
    async def scenario():
        async with running_server() as server:
            client = await RtmpTestClient.open(server.port)
            stream_id = await client.start_publishing("stream")
            client.writer.write(client.chunks_out.window_ack_size(10_000))
            send_media(client, stream_id, until=500)
            while (message := await client.read_message()).type_id != MessageType.ACKNOWLEDGEMENT:
                pass
            assert parse_u32(message.payload) >= 10_000
            client.close()

    run(scenario)


def test_delete_stream_ends_the_stream_but_not_the_connection():
    async def scenario():
        async with running_server() as server:
            client = await RtmpTestClient.open(server.port)
            stream_id = await client.start_publishing("stream")
            stream = server.registry.get(KEY)
            client.command("FCUnpublish", None, "stream")
            client.command("deleteStream", None, float(stream_id))
            await eventually(lambda: stream.ended and server.registry.get(KEY) is None)
            # The same connection may publish again.
            stream_id = await client.create_stream()
            assert (await client.publish("stream", stream_id))["code"] == "NetStream.Publish.Start"
            assert server.registry.get(KEY) is not stream
            client.close()

    run(scenario)


def test_the_stop_handler_disconnects_the_publisher():
    async def scenario():
        async with running_server() as server:
            client = await RtmpTestClient.open(server.port)
            await client.start_publishing("stream")
            stream = server.registry.get(KEY)
            stream.stop()  # what the API's DELETE does
            await client.wait_closed()
            await eventually(lambda: server.registry.get(KEY) is None and stream.ended)

    run(scenario)


def test_a_player_whose_queue_overflows_is_disconnected():
    async def scenario():
        async with running_server() as server:
            stream = server.registry.open(KEY, "test")
            stream.push(MediaPacket(TrackKind.VIDEO, "h264", 0, 0, b"\x01config", config=True))
            player = await RtmpTestClient.open(server.port)
            assert (await player.connect())[0] == "_result"
            await player.play("stream", await player.create_stream())
            await eventually(lambda: stream.subscriber_count == 1)
            for i in range(5000):  # no await: the player's queue cannot drain meanwhile
                stream.push(MediaPacket(TrackKind.AUDIO, "aac", i, i, b"frame"))
            await player.wait_closed()
            await eventually(lambda: stream.counters.connections.get("rtmp") == 0 and stream.subscriber_count == 0)

    run(scenario)


def test_a_player_that_stops_reading_is_disconnected_after_the_drain_timeout():
    async def scenario():
        async with running_server(drain_timeout=0.5) as server:
            stream = server.registry.open(KEY, "test")
            player = await RtmpTestClient.open(server.port)
            assert (await player.connect())[0] == "_result"
            await player.play("stream", await player.create_stream())
            await eventually(lambda: stream.subscriber_count == 1)
            # From here on the player reads nothing; its socket buffers fill up.
            frame = bytes(200_000)
            async with asyncio.timeout(10):
                while stream.counters.connections.get("rtmp"):
                    stream.push(MediaPacket(TrackKind.VIDEO, "h264", 0, 0, frame, keyframe=True))
                    await asyncio.sleep(0.01)
            assert stream.subscriber_count == 0
            player.close()

    run(scenario)


def test_idle_and_garbage_connections_are_dropped_without_harm():
    async def scenario():
        async with running_server(handshake_timeout=0.5, connect_timeout=0.5) as server:
            silent = await asyncio.open_connection("127.0.0.1", server.port)
            no_connect = await RtmpTestClient.open(server.port)
            http = await asyncio.open_connection("127.0.0.1", server.port)
            http[1].write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(1600))
            bad_chunks = await RtmpTestClient.open(server.port)
            bad_chunks.writer.write(b"\x44" + bytes(64))  # fmt 1 on a chunk stream never seen
            bad_amf = await RtmpTestClient.open(server.port)
            bad_amf.send(3, MessageType.COMMAND_AMF0, 0, 0, b"\x02\x00\x07conn")

            good = await RtmpTestClient.open(server.port)
            assert (await good.connect())[0] == "_result"

            for reader in (silent[0], no_connect.reader, http[0], bad_chunks.reader, bad_amf.reader):
                async with asyncio.timeout(3):
                    while await reader.read(65536):
                        pass
            await eventually(lambda: len(server.sessions) == 1)
            good.close()

    run(scenario)


def test_stopping_the_server_ends_every_session():
    async def scenario():
        server = RtmpServer(StreamRegistry(), StaticControlPlane([ApplicationConfig("default", "app")]), port=0)
        await server.start()
        publisher = await RtmpTestClient.open(server.port)
        await publisher.start_publishing("stream")
        idle = await asyncio.open_connection("127.0.0.1", server.port)
        await eventually(lambda: len(server.sessions) == 2)
        await server.stop()
        assert server.sessions == [] and server.registry.get(KEY) is None
        await publisher.wait_closed()
        assert await idle[0].read() == b""

    run(scenario)


def test_a_publisher_starts_a_stream_only_once_its_announced_tracks_are_configured():
    async def scenario():
        async with running_server() as server:
            started: list[LiveStream] = []
            server.registry.on_started(started.append)
            client = await RtmpTestClient.open(server.port)
            stream_id = await client.start_publishing("stream")
            # Published, but no media: the name is taken, yet there is no stream to list.
            metadata = amf0.encode("@setDataFrame", "onMetaData", amf0.EcmaArray(videocodecid=7.0, audiocodecid=10.0))
            client.send(4, MessageType.DATA_AMF0, stream_id, 0, metadata)
            client.send(4, MessageType.AUDIO, stream_id, 0, b"\xaf\x00\x12\x10")  # AAC sequence header
            await eventually(lambda: (s := server.registry.get(KEY)) is not None and s.audio_config is not None)
            assert started == [] and server.registry.streams() == []
            avc_config = bytes.fromhex("0164001effe1000467640016010004" + "68ee3c80")
            client.send(6, MessageType.VIDEO, stream_id, 0, b"\x17\x00\x00\x00\x00" + avc_config)
            await eventually(lambda: len(started) == 1)
            assert [track.kind for track in started[0].tracks()] == ["video", "audio"]
            client.close()

    run(scenario)


def test_connections_beyond_the_cap_are_hung_up_on_and_room_frees_when_one_leaves():
    async def scenario():
        async with running_server(limits=RtmpLimits(max_connections=3)) as server:
            clients = [await RtmpTestClient.open(server.port) for _ in range(3)]
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            assert await asyncio.wait_for(reader.read(), 5) == b""  # hung up on before the handshake
            writer.close()
            assert server.refused == 1
            clients[0].close()
            await eventually(lambda: len(server.sessions) == 2)
            again = await RtmpTestClient.open(server.port)
            assert (await again.connect())[0] == "_result"
            for client in (*clients[1:], again):
                client.close()

    run(scenario)


def test_the_rtmp_cap_stays_under_a_quarter_of_the_open_file_limit():
    assert RtmpLimits(max_connections=5000).effective_max_connections(fd_limit=1024) == 256
    assert RtmpLimits(max_connections=100).effective_max_connections(fd_limit=20_000) == 100
    assert RtmpLimits(max_connections=0).effective_max_connections(fd_limit=1024) is None
