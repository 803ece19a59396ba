"""AMF0: known encodings, round trips, the recorded ffmpeg commands, and malformed input."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_engine.rtmp import amf0

from .rtmp_client import ffmpeg_publish_messages


def test_it_encodes_each_type_as_the_spec_shows():
    assert amf0.encode(1.5) == b"\x00\x3f\xf8\x00\x00\x00\x00\x00\x00"
    assert amf0.encode(True, False) == b"\x01\x01\x01\x00"
    assert amf0.encode("ab") == b"\x02\x00\x02ab"
    assert amf0.encode(None) == b"\x05"
    assert amf0.encode(amf0.UNDEFINED) == b"\x06"
    assert amf0.encode({"a": 1}) == b"\x03\x00\x01a\x00\x3f\xf0" + bytes(6) + b"\x00\x00\x09"
    assert amf0.encode(amf0.EcmaArray(a=None)) == b"\x08\x00\x00\x00\x01\x00\x01a\x05\x00\x00\x09"
    assert amf0.encode([None, True]) == b"\x0a\x00\x00\x00\x02\x05\x01\x01"
    assert amf0.encode(amf0.Date(0.0)) == b"\x0b" + bytes(10)


def test_long_strings_use_the_long_string_marker():
    text = "x" * 70000
    data = amf0.encode(text)
    assert data[0] == amf0.LONG_STRING
    assert data[1:5] == (70000).to_bytes(4, "big")
    assert amf0.decode(data) == text


@pytest.mark.parametrize(
    "value",
    [
        0.0,
        -12.25,
        True,
        "",
        "héllo",
        None,
        amf0.UNDEFINED,
        {"level": "status", "code": "NetStream.Publish.Start", "nested": {"x": [1.0, "y", None]}},
        amf0.EcmaArray(width=320.0, height=240.0, stereo=False),
        [],
        [1.0, [2.0, {"k": "v"}]],
        amf0.Date(1700000000000.0, 0),
    ],
)
def test_it_round_trips(value):
    decoded = amf0.decode(amf0.encode(value))
    assert decoded == value
    assert type(decoded) is type(value)


def test_ints_decode_as_floats_and_datetimes_as_dates():
    assert amf0.decode(amf0.encode(7)) == 7.0
    moment = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
    decoded = amf0.decode(amf0.encode(moment))
    assert isinstance(decoded, amf0.Date)
    assert decoded.to_datetime() == moment


def test_decode_all_reads_a_whole_command():
    body = amf0.encode("connect", 1.0, {"app": "app", "tcUrl": "rtmp://h/app"}, None)
    assert amf0.decode_all(body) == ["connect", 1.0, {"app": "app", "tcUrl": "rtmp://h/app"}, None]


def test_it_decodes_the_commands_ffmpeg_sent():
    commands = [amf0.decode_all(m.payload) for m in ffmpeg_publish_messages() if m.type_id == 20]
    names = [values[0] for values in commands]
    assert names == ["connect", "releaseStream", "FCPublish", "createStream", "publish", "FCUnpublish", "deleteStream"]
    connect = commands[0][2]
    assert connect["app"] == "app"
    assert connect["tcUrl"].startswith("rtmp://127.0.0.1:")
    assert commands[4][3:] == ["stream", "live"]
    metadata = next(amf0.decode_all(m.payload) for m in ffmpeg_publish_messages() if m.type_id == 18)
    assert metadata[:2] == ["@setDataFrame", "onMetaData"]
    assert isinstance(metadata[2], amf0.EcmaArray)
    assert (metadata[2]["width"], metadata[2]["height"]) == (160.0, 120.0)


@pytest.mark.parametrize(
    "data",
    [
        b"",  # nothing
        b"\x00\x3f",  # truncated number
        b"\x02\x00\x05ab",  # string shorter than its length
        b"\x03\x00\x01a\x05",  # object without end marker
        b"\x0a\xff\xff\xff\xff\x05",  # strict array claiming 4 billion items
        b"\x09",  # object end with no object
        b"\x11\x00",  # AMF3 switch: not supported
        b"\x07\x00\x01",  # reference: not supported
        b"\x03" * 1000,  # absurd nesting
    ],
)
def test_malformed_input_raises_value_error(data):
    with pytest.raises(ValueError):
        amf0.decode(data)


def test_decode_refuses_trailing_bytes():
    with pytest.raises(ValueError):
        amf0.decode(amf0.encode(1.0) + b"\x05")


def test_unencodable_values_raise_type_error():
    with pytest.raises(TypeError):
        amf0.encode(object())


amf_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.just(amf0.UNDEFINED)
    | st.builds(amf0.Date, st.floats(allow_nan=False), st.integers(-32768, 32767)),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5).map(amf0.EcmaArray),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(amf_values)
def test_encode_then_decode_is_identity(value):
    assert amf0.decode(amf0.encode(value)) == value


@settings(max_examples=1000, deadline=datetime.timedelta(seconds=2))  # a hang fails, slowness does not
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_value_error(data):
    try:
        amf0.decode_all(data)
    except ValueError:
        pass


@settings(max_examples=150, deadline=None)
@given(amf_values, st.data())
def test_corrupted_encodings_only_ever_raise_value_error(value, data):
    encoded = bytearray(amf0.encode(value))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(encoded) - 1))
        encoded[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    try:
        amf0.decode_all(bytes(encoded[:cut]))
    except ValueError:
        pass
