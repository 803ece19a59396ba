"""Engine commands on the wire: every command comes back as it was sent, and a malformed message is
refused with a reason instead of reaching a handler."""

import pytest

from media_engine.commands import (
    BadCommand,
    InsertTimedMetadata,
    ReloadCertificates,
    SetHls,
    StartRelay,
    StopRelay,
    StopStream,
    parse_command,
    to_message,
)
from media_engine.registry import StreamKey

STREAM = {"vhost": "default", "app": "app", "stream": "cam"}
EVERY_COMMAND = [
    StopStream(**STREAM),
    SetHls(**STREAM, enabled=False),
    InsertTimedMetadata(**STREAM, id3=b"ID3\x04\x00\x00\x00\x00\x00\x00"),
    StartRelay(**STREAM, relay_id="r1", direction="pull", url="http://edge:3333/app/cam?direction=whep"),
    StopRelay(relay_id="r1"),
    ReloadCertificates(vhost="*"),
]


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=lambda command: command.TYPE)
def test_every_command_comes_back_as_it_was_sent(command):
    message = to_message(command)
    assert message["type"] == command.TYPE
    assert parse_command(message) == command


def test_the_wire_form_is_the_one_the_engine_always_read():
    assert to_message(StopStream(**STREAM)) == {"type": "stream.stop", **STREAM}
    assert to_message(SetHls(**STREAM, enabled=True)) == {"type": "stream.hls", **STREAM, "enabled": True}


def test_a_stream_command_names_its_stream_key():
    assert StopStream(**STREAM).key == StreamKey("default", "app", "cam")


def test_fields_the_command_does_not_have_are_ignored():
    assert parse_command({"type": "stream.stop", **STREAM, "sent_by": "a newer API"}) == StopStream(**STREAM)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (None, "a command is a dict, not NoneType"),
        (["stream.stop"], "a command is a dict, not list"),
        ({}, "unknown command type None"),
        ({"type": ["stream.stop"]}, "unknown command type ['stream.stop']"),
        ({"type": "stream.explode", **STREAM}, "unknown command type 'stream.explode'"),
        ({"type": "stream.stop", "vhost": "default", "app": "app"}, "stream.stop: stream is missing"),
        ({"type": "stream.stop", **STREAM, "stream": ""}, "stream.stop: stream is empty"),
        ({"type": "stream.stop", **STREAM, "app": 7}, "stream.stop: app must be str, not int"),
        ({"type": "stream.hls", **STREAM, "enabled": 1}, "stream.hls: enabled must be bool, not int"),
        ({"type": "stream.hls", **STREAM, "enabled": "false"}, "stream.hls: enabled must be bool, not str"),
        (
            {"type": "stream.timed_metadata", **STREAM, "id3": "ID3"},
            "stream.timed_metadata: id3 must be bytes, not str",
        ),
        ({"type": "webrtc.relay.stop"}, "webrtc.relay.stop: relay_id is missing"),
        (
            {"type": "webrtc.relay.start", **STREAM, "relay_id": "r", "direction": "sideways", "url": "http://x/"},
            "relay direction must be one of pull, push, not 'sideways'",
        ),
    ],
)
def test_a_malformed_message_is_refused_with_its_reason(message, reason):
    with pytest.raises(BadCommand) as refused:
        parse_command(message)
    assert str(refused.value) == reason
