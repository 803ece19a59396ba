"""CDN transcoding profiles as services store them: a valid profile is kept in WCS's shape, a bad or
duplicate one is refused with a message and nothing changes."""

from __future__ import annotations

import pytest

from apps.cdn.models import CdnProfile
from apps.cdn.services import ProfileError, ProfileExists, ProfileNotFound, add_profile, modify_profile, remove_profile

pytestmark = pytest.mark.django_db

PROFILE = {"video": {"codec": "h264", "height": 720, "bitrate": 2000}, "audio": {"codec": "aac", "rate": 48000}}


def test_a_valid_profile_is_stored_and_shown_in_wcs_shape():
    add_profile("-720p", PROFILE)

    assert CdnProfile.objects.get(name="-720p").to_wcs() == {"name": "-720p", "profile": PROFILE}


def test_a_second_profile_with_the_same_name_is_refused():
    add_profile("-720p", PROFILE)

    with pytest.raises(ProfileExists, match="profile -720p exists"):
        add_profile("-720p", {"video": {"height": 480}})
    assert CdnProfile.objects.get(name="-720p").video == PROFILE["video"]


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({}, "profile must have an audio or a video part"),
        ({"video": {"height": 5}}, "profile.video.height must be a whole number from 16 to 4320"),
        ({"video": {"codec": "hevc"}}, "profile.video.codec 'hevc' is not supported"),
        ({"audio": {"codec": "aac"}, "subtitles": {}}, "profile.subtitles is not a known part"),
    ],
)
def test_a_bad_profile_is_refused_and_nothing_is_stored(profile, message):
    with pytest.raises(ProfileError, match=message):
        add_profile("-bad", profile)
    assert not CdnProfile.objects.exists()


def test_modifying_or_removing_an_unknown_profile_says_not_found():
    with pytest.raises(ProfileNotFound):
        modify_profile("-nope", PROFILE)
    with pytest.raises(ProfileNotFound):
        remove_profile("-nope")


def test_a_modified_profile_replaces_both_parts():
    add_profile("-720p", PROFILE)

    modify_profile("-720p", {"video": {"height": 480}})

    row = CdnProfile.objects.get(name="-720p")
    assert (row.video, row.audio) == ({"height": 480}, {})
