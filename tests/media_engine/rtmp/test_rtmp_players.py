"""Many players of one stream: each packet chunked once (`StreamPlayout`), every player gets a whole,
decodable stream with its own timestamps from 0, late and slow players included."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
from pathlib import Path

from media_engine.packets import MediaPacket, TrackKind
from media_engine.registry import LiveStream, StreamKey
from media_engine.rtmp.chunks import ChunkReader, Message, MessageType
from media_engine.rtmp.playout import PLAYER_QUEUE, PlayoutEnd, PlayoutPlayer, StreamPlayout
from media_engine.rtmp.playout import play as start_playout

from .rtmp_client import RtmpTestClient, running_server
from .test_rtmp_ffmpeg import finish, publish_command, start, wait_live

KEY = StreamKey("default", "app", "stream")
CHUNK_SIZE = 4096


# -- the playout alone, on transports that keep what they are given -------------------------


class KeepingTransport:
    """What a player's socket would carry, kept in memory."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.data += data
        self.writes += 1

    def is_closing(self) -> bool:
        return False


class Writer:
    chunk_size = CHUNK_SIZE

    def write(self, csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes) -> bytes:
        raise AssertionError("no data message in these streams")


def make_player(ends: list[str], stream_id: int = 1) -> tuple[PlayoutPlayer, KeepingTransport]:
    transport = KeepingTransport()
    player = PlayoutPlayer(transport, Writer(), stream_id, ends.append, drain_timeout=30.0)  # type: ignore[arg-type]
    return player, transport


def received(transport: KeepingTransport) -> list[Message]:
    reader = ChunkReader()
    reader.chunk_size = CHUNK_SIZE
    return reader.feed(bytes(transport.data))


def push_frames(stream: LiveStream, start: int, count: int) -> list[int]:
    """Video at 30 fps (a keyframe every 30) with AAC between frames; the video dts pushed."""
    pushed = []
    for i in range(start, start + count):
        dts = 100_000 + i * 33
        stream.push(
            MediaPacket(TrackKind.VIDEO, "h264", dts, dts + 66, b"\x00\x00\x00\x02\x09\xf0" * (i % 7 + 1), i % 30 == 0)
        )
        stream.push(MediaPacket(TrackKind.AUDIO, "aac", dts + 5, dts + 5, b"\x21" * 10))
        pushed.append(dts)
    return pushed


def media_timestamps(messages: list[Message], type_id: int) -> list[int]:
    return [m.timestamp for m in messages if m.type_id == type_id and m.payload[1:2] != b"\x00"]


def test_players_share_the_chunked_bytes_and_each_gets_its_own_timestamps_from_zero():
    async def scenario():
        stream = LiveStream(KEY, "test")
        stream.push(MediaPacket(TrackKind.VIDEO, "h264", 0, 0, b"\x01avc-config", config=True))
        stream.push(MediaPacket(TrackKind.AUDIO, "aac", 0, 0, b"\x12\x10", config=True))
        pushed = push_frames(stream, 0, 45)  # keyframes at frames 0 and 30: the GOP cache holds 30..44
        ends: list[str] = []
        early, early_out = make_player(ends)
        playout = start_playout(stream, early)
        await asyncio.sleep(0.01)
        pushed += push_frames(stream, 45, 20)
        await asyncio.sleep(0.01)
        late, late_out = make_player(ends, stream_id=3)
        assert start_playout(stream, late) is playout
        pushed += push_frames(stream, 65, 30)
        await asyncio.sleep(0.01)

        for transport, first in ((early_out, 30), (late_out, 60)):  # the late one: the GOP of frame 60
            messages = received(transport)
            video = [m for m in messages if m.type_id == MessageType.VIDEO]
            assert video[0].payload[:2] == b"\x17\x00" and video[0].timestamp == 0  # AVC configuration first
            assert video[1].payload[:2] == b"\x17\x01"  # then the cached keyframe...
            expected = [dts - pushed[first] for dts in pushed[first:]]
            assert media_timestamps(messages, MessageType.VIDEO) == expected  # ...at 0, then every frame
            assert media_timestamps(messages, MessageType.AUDIO) == [t + 5 for t in expected]
        assert {m.stream_id for m in received(late_out)} == {3}
        # The live part went out as shared batches: a write per batch, not per packet.
        assert early_out.writes <= 4 and late_out.writes <= 3
        assert ends == []
        stream.end()
        await asyncio.sleep(0.01)
        assert ends == [PlayoutEnd.ENDED, PlayoutEnd.ENDED]
        assert playout.players == []

    asyncio.run(scenario())


def test_a_paused_player_gets_what_was_held_and_one_too_far_behind_is_dropped_alone():
    async def scenario():
        stream = LiveStream(KEY, "test")
        stream.push(MediaPacket(TrackKind.VIDEO, "h264", 0, 0, b"\x01avc-config", config=True))
        pushed = push_frames(stream, 0, 10)
        ends: list[str] = []
        steady, steady_out = make_player(ends)
        paused, paused_out = make_player(ends)
        stuck, stuck_out = make_player(ends)
        playout: StreamPlayout = start_playout(stream, steady)
        start_playout(stream, paused)
        start_playout(stream, stuck)
        await asyncio.sleep(0.01)
        paused.pause()
        stuck.pause()
        pushed += push_frames(stream, 10, 40)
        await asyncio.sleep(0.01)
        held = len(paused_out.data)
        paused.resume()
        assert len(paused_out.data) > held
        assert paused_out.data == steady_out.data  # same bytes, same order, once drained
        # The stuck one stays paused until it is more than its queue behind: only it is dropped.
        frames = PLAYER_QUEUE // 2
        for chunk in range(0, frames, 100):
            pushed += push_frames(stream, 50 + chunk, 100)
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        assert ends == [PlayoutEnd.TOO_SLOW]
        assert stuck not in playout.players and len(playout.players) == 2
        for transport in (steady_out, paused_out):
            assert media_timestamps(received(transport), MessageType.VIDEO) == [dts - pushed[0] for dts in pushed]

    asyncio.run(scenario())


def test_time_going_backwards_gets_headers_of_their_own_and_stays_right_for_every_player():
    async def scenario():
        stream = LiveStream(KEY, "test")
        stream.push(MediaPacket(TrackKind.VIDEO, "h264", 0, 0, b"\x01avc-config", config=True))
        ends: list[str] = []
        first, first_out = make_player(ends)
        second, second_out = make_player(ends)
        start_playout(stream, first)
        start_playout(stream, second)
        timestamps = [1000, 1033, 1066, 500, 533, 566, 20_000_000, 20_000_033]  # a jump back, and one of 5.5 hours
        for i, dts in enumerate(timestamps):
            stream.push(MediaPacket(TrackKind.VIDEO, "h264", dts, dts, b"\x00\x00\x00\x01\x09", keyframe=i == 0))
        await asyncio.sleep(0.01)
        for transport in (first_out, second_out):
            got = media_timestamps(received(transport), MessageType.VIDEO)
            assert got == [0, 33, 66, 0, 0, 0, 20_000_000 - 1000, 20_000_033 - 1000]

    asyncio.run(scenario())


# -- real ffmpeg publishing, many players, ffprobe on what each received ----------------------


def flv_file(path: Path, messages: list[Message]) -> None:
    """The audio/video messages a player received as an FLV file, timestamps as received."""
    out = bytearray(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")
    for m in messages:
        if m.type_id not in (MessageType.AUDIO, MessageType.VIDEO):
            continue
        ts = m.timestamp
        out += bytes((m.type_id,)) + len(m.payload).to_bytes(3, "big")
        out += (ts & 0xFFFFFF).to_bytes(3, "big") + bytes(((ts >> 24) & 0xFF,)) + b"\x00\x00\x00"
        out += m.payload + struct.pack(">I", 11 + len(m.payload))
    path.write_bytes(bytes(out))


async def play_until_the_end(port: int, delay: float = 0.0, slow: bool = False) -> list[Message]:
    await asyncio.sleep(delay)
    player = await RtmpTestClient.open(port)
    assert (await player.connect())[0] == "_result"
    status = await player.play("stream", await player.create_stream())
    assert status["code"] == "NetStream.Play.Reset"
    if slow:  # reads a little at a time: the engine holds or buffers for it, nobody else waits
        player.received.extend(player._queue)  # (read with the status, not taken yet)
        player._queue.clear()
        while True:
            await asyncio.sleep(0.05)
            data = await player.reader.read(8192)
            if not data:
                break
            player.received.extend(player.chunks_in.feed(data))
    else:
        await player.wait_closed(timeout=30)
    return player.received


def test_thirty_players_a_late_one_and_a_slow_one_each_receive_a_decodable_stream(tmp_path):
    async def scenario():
        async with running_server() as server:
            url = f"rtmp://127.0.0.1:{server.port}/app/stream"
            publisher = await start(*publish_command(url, 5))
            stream = await wait_live(server.registry)
            truth = [p.dts for p in stream.gop if p.kind is TrackKind.VIDEO]  # what players get first
            stream.add_sink(lambda p: truth.append(p.dts) if p.kind is TrackKind.VIDEO and not p.config else None)
            players = [asyncio.ensure_future(play_until_the_end(server.port)) for _ in range(30)]
            late = asyncio.ensure_future(play_until_the_end(server.port, delay=2.0))
            slow = asyncio.ensure_future(play_until_the_end(server.port, slow=True))
            ffplay = await start(
                "ffmpeg", "-v", "error", "-i", url, "-c", "copy", "-f", "flv", str(tmp_path / "ffmpeg.flv")
            )
            code, _, err = await finish(publisher, 60)
            assert code == 0, err
            results = await asyncio.wait_for(asyncio.gather(*players, late, slow), 90)
            assert (await finish(ffplay))[0] == 0
            return results, truth

    results, truth = asyncio.run(asyncio.wait_for(scenario(), 150))  # generous: shared, loaded machines
    assert len(truth) > 100
    for index, messages in enumerate(results):
        video = [m for m in messages if m.type_id == MessageType.VIDEO and m.payload[1:2] == b"\x01"]
        assert video[0].payload[0] >> 4 == 1 and video[0].timestamp == 0, index  # starts on a keyframe, at 0
        timestamps = [m.timestamp for m in video]
        start_at = len(truth) - len(timestamps)
        assert start_at >= 0
        expected = [dts - truth[start_at] for dts in truth[start_at:]]
        # Every frame from its keyframe to the end (the last ones may follow the end of the sink's view).
        assert timestamps == expected, index
        if index == 30:  # the late player joined at a later keyframe
            assert start_at > 0

    files = [tmp_path / "ffmpeg.flv"]
    for index in (0, 29, 30, 31):  # two of the thirty, the late one, the slow one
        files.append(tmp_path / f"player{index}.flv")
        flv_file(files[-1], results[index])
    for path in files:
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-count_frames", "-of", "json", str(path)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
        assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac", path
        assert int(streams["video"]["nb_read_frames"]) >= 25, path
        decode = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True
        )
        assert decode.returncode == 0 and not decode.stderr.strip(), (path, decode.stderr[-500:])
