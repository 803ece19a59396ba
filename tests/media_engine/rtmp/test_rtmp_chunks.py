"""The chunk stream: the recorded ffmpeg session, header formats, control messages, limits, fuzzing."""

from __future__ import annotations

import datetime
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_engine.rtmp.chunks import (
    MAX_MESSAGE_SIZE,
    ChunkReader,
    ChunkWriter,
    Message,
    MessageType,
    PendingBudget,
    UserControlEvent,
    parse_u32,
    parse_user_control,
)
from media_engine.rtmp.handshake import C0C1_SIZE, HANDSHAKE_SIZE

from .rtmp_client import FFMPEG_PUBLISH

CHUNK_STREAM = FFMPEG_PUBLISH.read_bytes()[C0C1_SIZE + HANDSHAKE_SIZE :]


def feed_in_pieces(reader: ChunkReader, data: bytes, rng: random.Random, max_piece: int = 300) -> list[Message]:
    messages = []
    pos = 0
    while pos < len(data):
        step = rng.randint(1, max_piece)
        messages += reader.feed(data[pos : pos + step])
        pos += step
    return messages


def test_it_reassembles_the_recorded_ffmpeg_publish_session():
    reader = ChunkReader()
    messages = reader.feed(CHUNK_STREAM)
    assert reader.buffered == 0
    types = [m.type_id for m in messages]
    assert types[:2] == [MessageType.COMMAND_AMF0, MessageType.SET_CHUNK_SIZE]
    assert reader.chunk_size == 4096  # ffmpeg's Set Chunk Size was applied
    assert types.count(MessageType.VIDEO) == 52
    assert types.count(MessageType.AUDIO) == 89
    assert types.count(MessageType.DATA_AMF0) == 1
    # Some video messages span several chunks, and their timestamps only go forward.
    video = [m for m in messages if m.type_id == MessageType.VIDEO]
    assert any(len(m.payload) > 4096 for m in video)
    assert [m.timestamp for m in video] == sorted(m.timestamp for m in video)
    assert video[-1].timestamp == 1960  # ffmpeg ends with an AVC end-of-sequence tag
    assert video[-1].payload == b"\x17\x02\x00\x00\x00"
    assert {m.stream_id for m in video} == {1}


@pytest.mark.parametrize("seed", range(5))
def test_any_split_of_the_input_gives_the_same_messages(seed):
    expected = ChunkReader().feed(CHUNK_STREAM)
    got = feed_in_pieces(ChunkReader(), CHUNK_STREAM, random.Random(seed), max_piece=1 + seed * 200)
    assert got == expected


@pytest.mark.parametrize("chunk_size", [1, 128, 4096])
@pytest.mark.parametrize("csid", [2, 63, 64, 319, 320, 65599])
def test_written_messages_read_back(chunk_size, csid):
    writer = ChunkWriter(chunk_size)
    reader = ChunkReader()
    reader.chunk_size = chunk_size
    sent = [
        Message(9, 1, 0, b"\x17" * 10, csid),
        Message(9, 1, 40, b"\x27" * 10, csid),  # same size: format 2
        Message(9, 1, 80, b"\x27" * (chunk_size + 1), csid),  # new size: format 1, two chunks
        Message(8, 1, 80, b"", csid),  # empty payload
        Message(8, 1, 20, b"x" * 3, csid),  # backwards in time: format 0
        Message(8, 2, 30, b"y" * 3, csid),  # another message stream: format 0
        Message(8, 2, 0xFFFFFF + 5, b"z" * (2 * chunk_size + 3), csid),  # extended timestamp
        Message(8, 2, 0xFFFFFF + 6, b"z" * (2 * chunk_size + 3), csid),
        Message(8, 2, 0x7FFFFFFF, b"w" * 5, csid),  # extended delta
    ]
    data = b"".join(writer.write(m.csid, m.type_id, m.stream_id, m.timestamp, m.payload) for m in sent)
    assert reader.feed(data) == sent
    assert reader.buffered == 0


def test_format_3_starting_a_message_repeats_the_previous_delta():
    # fmt 0 at t=40, then a bare fmt 3 header: the new message is at t=80 (as ffmpeg reads and writes it).
    data = bytes([0x04, 0, 0, 40, 0, 0, 1, 8, 1, 0, 0, 0]) + b"a" + bytes([0xC4]) + b"b"
    data += bytes([0x84, 0, 0, 10]) + b"c" + bytes([0xC4]) + b"d"  # fmt 2 with delta 10, then fmt 3
    messages = ChunkReader().feed(data)
    assert [(m.timestamp, m.payload) for m in messages] == [(40, b"a"), (80, b"b"), (90, b"c"), (100, b"d")]


def test_continuation_chunks_may_omit_the_extended_timestamp():
    header = bytes([0x04, 0xFF, 0xFF, 0xFF, 0, 0, 200, 9, 1, 0, 0, 0]) + (0x01000000).to_bytes(4, "big")
    payload = bytes(range(200))
    with_ext = header + payload[:128] + bytes([0xC4]) + (0x01000000).to_bytes(4, "big") + payload[128:]
    without_ext = header + payload[:128] + bytes([0xC4]) + payload[128:]
    for data in (with_ext, without_ext):
        (message,) = ChunkReader().feed(data)
        assert (message.timestamp, message.payload) == (0x01000000, payload)


def test_set_chunk_size_and_abort_take_effect_at_once():
    writer = ChunkWriter()
    data = writer.set_chunk_size(256)
    data += writer.write(4, 9, 1, 0, b"v" * 300)
    reader = ChunkReader()
    messages = reader.feed(data)
    assert reader.chunk_size == 256
    assert [m.type_id for m in messages] == [MessageType.SET_CHUNK_SIZE, 9]
    assert messages[1].payload == b"v" * 300

    # Half a message on csid 5, an Abort for csid 5, then a whole new message there.
    writer = ChunkWriter()
    partial = writer.write(5, 9, 1, 0, b"p" * 200)[: 12 + 128]
    data = partial + writer.abort(5) + ChunkWriter().write(5, 8, 1, 7, b"q")
    messages = ChunkReader().feed(data)
    assert [(m.type_id, m.payload) for m in messages] == [(MessageType.ABORT, (5).to_bytes(4, "big")), (8, b"q")]


def test_control_message_builders_parse_back():
    writer = ChunkWriter()
    data = (
        writer.window_ack_size(2_500_000)
        + writer.set_peer_bandwidth(2_500_000, 2)
        + writer.acknowledgement(2**32 + 5)
        + writer.user_control(UserControlEvent.PING_REQUEST, 1234)
    )
    win, bw, ack, ping = ChunkReader().feed(data)
    assert (win.type_id, parse_u32(win.payload)) == (MessageType.WINDOW_ACK_SIZE, 2_500_000)
    assert (bw.type_id, bw.payload) == (MessageType.SET_PEER_BANDWIDTH, (2_500_000).to_bytes(4, "big") + b"\x02")
    assert (ack.type_id, parse_u32(ack.payload)) == (MessageType.ACKNOWLEDGEMENT, 5)
    assert parse_user_control(ping.payload) == (UserControlEvent.PING_REQUEST, (1234).to_bytes(4, "big"))
    assert all(m.csid == 2 and m.stream_id == 0 for m in (win, bw, ack, ping))


@pytest.mark.parametrize("size", [0, 16 * 1024 * 1024 + 1, 0x7FFFFFFF])
def test_absurd_chunk_sizes_are_refused(size):
    data = bytes([0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0]) + size.to_bytes(4, "big")
    with pytest.raises(ValueError):
        ChunkReader().feed(data)


def test_messages_over_the_size_limit_are_refused():
    data = ChunkWriter().write(4, 9, 1, 0, bytes(2000))
    reader = ChunkReader(max_message_size=1000)
    with pytest.raises(ValueError):
        reader.feed(data[:12])
    with pytest.raises(ValueError):  # and the reader stays failed
        reader.feed(b"")


def test_too_much_incomplete_data_is_refused():
    writer = ChunkWriter()
    reader = ChunkReader(max_pending_bytes=1000)
    with pytest.raises(ValueError):
        for csid in range(3, 40):
            reader.feed(writer.write(csid, 9, 1, 0, bytes(1000))[:140])  # the first chunk of each


@pytest.mark.parametrize("first_byte", [0x44, 0x84, 0xC4])
def header(csid: int, type_id: int, length: int) -> bytes:
    """A format 0 chunk header declaring a message of ``length`` bytes (no payload)."""
    return ChunkWriter().write(csid, type_id, 1, 0, bytes(length))[:12]


@pytest.mark.parametrize(
    ("type_id", "refused", "accepted"),
    [
        (MessageType.VIDEO, MAX_MESSAGE_SIZE + 1, MAX_MESSAGE_SIZE),
        (MessageType.AGGREGATE, MAX_MESSAGE_SIZE + 1, MAX_MESSAGE_SIZE),
        (MessageType.AUDIO, 1024 * 1024 + 1, 64 * 1024),
        (MessageType.COMMAND_AMF0, 1024 * 1024 + 1, 4096),
        (MessageType.DATA_AMF0, 1024 * 1024 + 1, 4096),
        (MessageType.SET_CHUNK_SIZE, 65, 4),
        (MessageType.USER_CONTROL, 1000, 6),
    ],
)
def test_a_declared_length_beyond_what_its_type_needs_is_refused_on_the_header(type_id, refused, accepted):
    # The header alone (12 bytes) is enough to refuse: nothing of the message is ever kept.
    with pytest.raises(ValueError, match="too large"):
        ChunkReader().feed(header(4, type_id, refused))
    assert ChunkReader().feed(header(4, type_id, accepted)) == []


def test_the_incomplete_chunk_counts_against_the_connection_limit():
    # A peer may set a huge chunk size: the bytes of a chunk not yet whole are held as much as parts.
    writer = ChunkWriter()
    reader = ChunkReader(max_pending_bytes=100_000)
    reader.feed(writer.control(MessageType.SET_CHUNK_SIZE, (4 * 1024 * 1024).to_bytes(4, "big")))
    big = header(6, MessageType.VIDEO, 1024 * 1024)
    reader.feed(big + bytes(90_000))
    assert reader.held == 90_000 + len(big)
    with pytest.raises(ValueError, match="incomplete messages"):
        reader.feed(bytes(20_000))
    assert reader.held == 0  # a failed reader frees what it held


def started_messages(reader: ChunkReader, csid: int, nbytes: int) -> None:
    """Start a 1 MiB video message on ``csid`` and send ``nbytes`` of it (chunk size 128)."""
    data = ChunkWriter().write(csid, MessageType.VIDEO, 1, 0, bytes(1024 * 1024))
    # 12 bytes of header, then 128-byte chunks each followed by a 1-byte continuation header.
    whole_chunks = nbytes // 128
    reader.feed(data[: 12 + whole_chunks * 129 - 1])


def test_over_the_node_budget_the_readers_holding_the_most_are_evicted():
    budget = PendingBudget(limit=100_000)
    evicted: list[str] = []
    readers = {name: ChunkReader(budget=budget, on_evicted=lambda name=name: evicted.append(name)) for name in "abc"}
    started_messages(readers["a"], 4, 60_000)
    started_messages(readers["b"], 4, 10_000)
    assert budget.total == readers["a"].held + readers["b"].held
    started_messages(readers["c"], 4, 40_000)  # over the limit: "a" holds the most and goes
    assert evicted == ["a"]
    assert readers["a"].held == 0 and budget.holding(readers["a"]) == 0
    with pytest.raises(ValueError):
        readers["a"].feed(b"\xc4")
    assert budget.total == readers["b"].held + readers["c"].held <= budget.limit
    # A reader that grows into the largest while over the limit is refused in its own feed.
    with pytest.raises(ValueError, match="node is over its limit"):
        started_messages(readers["c"], 5, 60_000)
    assert evicted == ["a"] and budget.total == readers["b"].held and budget.evictions == 2
    readers["b"].close()
    assert budget.total == 0


def test_completed_messages_give_their_bytes_back_to_the_budget():
    budget = PendingBudget(limit=10_000_000)
    reader = ChunkReader(budget=budget)
    data = ChunkWriter().write(4, MessageType.VIDEO, 1, 0, bytes(100_000))
    reader.feed(data[:50_000])
    assert budget.total == reader.held > 0
    [message] = reader.feed(data[50_000:])
    assert len(message.payload) == 100_000
    assert budget.total == 0


@pytest.mark.parametrize("first_byte", [0x44, 0x84, 0xC4])
def test_a_headerless_chunk_on_a_new_chunk_stream_is_refused(first_byte):
    with pytest.raises(ValueError):
        ChunkReader().feed(bytes([first_byte]) + bytes(20))


@settings(max_examples=1000, deadline=datetime.timedelta(seconds=2))  # a hang fails, slowness does not
@given(st.binary(max_size=400), st.integers(1, 64))
def test_arbitrary_bytes_only_ever_raise_value_error(data, piece):
    reader = ChunkReader()
    try:
        for pos in range(0, len(data), piece):
            for message in reader.feed(data[pos : pos + piece]):
                assert len(message.payload) <= reader.max_message_size
    except ValueError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_corrupted_real_input_only_ever_raises_value_error(data):
    start = data.draw(st.integers(0, len(CHUNK_STREAM) - 1))
    sample = bytearray(CHUNK_STREAM[start : start + data.draw(st.integers(1, 3000))])
    for _ in range(data.draw(st.integers(0, 5))):
        sample[data.draw(st.integers(0, len(sample) - 1))] = data.draw(st.integers(0, 255))
    try:
        ChunkReader().feed(bytes(sample))
    except ValueError:
        pass


messages = st.lists(
    st.builds(
        Message,
        type_id=st.sampled_from([8, 9, 18, 20]),
        stream_id=st.integers(0, 3),
        timestamp=st.integers(0, 2**32 - 1),
        payload=st.binary(max_size=600),
        csid=st.sampled_from([3, 4, 6, 64, 400]),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(messages, st.integers(1, 700), st.randoms(use_true_random=False))
def test_writer_and_reader_agree(sent, chunk_size, rng):
    writer = ChunkWriter()
    data = writer.set_chunk_size(chunk_size)
    data += b"".join(writer.write(m.csid, m.type_id, m.stream_id, m.timestamp, m.payload) for m in sent)
    got = feed_in_pieces(ChunkReader(), data, rng, max_piece=500)
    assert got[1:] == sent
