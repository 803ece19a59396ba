"""Which tracks a record or push takes: trackIds name input tracks, variantNames name encodes of
the application's output profiles; names that match nothing are an error, not "everything"."""

import pytest

from apps.hosting.models import Application
from apps.push.models import Push
from apps.streams.models import Stream

pytestmark = pytest.mark.django_db

TRACKS = [{"id": 0, "kind": "video"}, {"id": 1, "kind": "audio"}]


@pytest.fixture
def stream() -> Stream:
    return Stream.objects.create(
        application=Application.objects.get(name="app"), name="s", source_type="Rtmp", input_tracks=TRACKS
    )


def push(**names) -> Push:
    return Push(application=Application.objects.get(name="app"), stream_name="s", protocol="rtmp", **names)


@pytest.mark.parametrize(
    ("names", "kinds"),
    [
        ({}, None),
        ({"track_ids": [0]}, ["video"]),
        ({"track_ids": [1, 0]}, ["audio", "video"]),
        # The shipped application's profile "bypass_stream" has encodes "bypass_video" and "aac".
        ({"variant_names": ["aac"]}, ["audio"]),
        ({"variant_names": ["bypass_video"], "track_ids": [1]}, ["audio", "video"]),
    ],
)
def test_track_kinds(stream, names, kinds):
    assert push(**names).track_kinds(stream) == kinds


def test_names_that_match_nothing_are_an_error(stream):
    with pytest.raises(ValueError, match="no track of s matches"):
        push(track_ids=[7], variant_names=["h264_fhd"]).track_kinds(stream)
