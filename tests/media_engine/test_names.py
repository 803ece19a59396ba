"""The stream name rule shared by the engine's entries and the API, and the SRT streamid's use of it."""

from __future__ import annotations

import pytest

from media_engine.names import STREAM_NAME_MAX_LENGTH, InvalidStreamName, check_stream_name, is_valid_stream_name
from media_engine.srt.ingest import parse_streamid

GOOD = ["stream", "cam-1", "Cam_2.hd", "_x", "a" * STREAM_NAME_MAX_LENGTH, "stream_720p", "0"]
BAD = ["", ".", "..", "../../x", "a/b", "a\\b", ".hidden", "-x", "sp ace", "a\nb", "a\x00b", "é",
       "a" * (STREAM_NAME_MAX_LENGTH + 1), "x" * 5000, "a?b", "a%2Fb", None, 5]  # fmt: skip


@pytest.mark.parametrize("name", GOOD)
def test_ordinary_names_pass(name):
    assert is_valid_stream_name(name)
    assert check_stream_name(name) == name


@pytest.mark.parametrize("name", BAD)
def test_names_that_could_escape_a_folder_or_break_a_url_are_refused(name):
    assert not is_valid_stream_name(name)
    with pytest.raises(InvalidStreamName, match="invalid stream name"):
        check_stream_name(name)


def test_a_long_name_is_shortened_in_the_error():
    with pytest.raises(InvalidStreamName) as refused:
        check_stream_name("x" * 5000)
    assert len(str(refused.value)) < 300 and "(5000 chars)" in str(refused.value)


@pytest.mark.parametrize(
    "streamid", ["default/app/..", "default/app/%2E%2E", "srt://host/app/..", f"default/app/{'x' * 5000}"]
)
def test_an_srt_streamid_with_a_bad_stream_name_is_refused(streamid):
    with pytest.raises(ValueError, match="invalid stream name"):
        parse_streamid(streamid)


def test_a_good_srt_streamid_is_parsed():
    assert parse_streamid("default/app/cam?token=1").stream == "cam"
    assert parse_streamid("srt://host:9999/app/cam").stream == "cam"
