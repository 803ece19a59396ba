"""What an output profile asks of a stream: renditions and their stream names, playlists, images,
what is left out, bypassIfMatch; OME's default and bypass profiles need no transcode."""

from __future__ import annotations

import pytest

from apps.hosting.models import Application, OutputProfile
from apps.transcoding.plans import BYPASS, bypass_matches, origin_of, plan_profile, safe_name

pytestmark = pytest.mark.django_db
V720 = {"name": "v720", "codec": "h264", "bitrate": 1200000, "width": 1280, "height": 720}
V360 = {"name": "v360", "codec": "h264", "bitrate": 300000, "height": 360}
AAC = {"name": "aac", "codec": "aac", "bitrate": 64000}
OPUS = {"name": "opus", "codec": "opus", "bitrate": 128000}


def profile(encodes: dict, playlists: list | None = None, output: str = "${OriginStreamName}") -> OutputProfile:
    application = Application.objects.get(virtual_host__name="default", name="app")
    return OutputProfile(
        application=application, name="p", output_stream_name=output, encodes=encodes, playlists=playlists or []
    )


def test_the_shipped_default_profile_needs_no_transcode():
    shipped = Application.objects.get(name="app").output_profiles.get()
    plan = plan_profile(shipped, "cam")
    assert plan.needs_job is False and plan.rendition_streams == []


def test_the_spec_bypass_profile_needs_no_transcode():
    bypass = profile({"videos": [{"bypass": True}], "audios": [{"bypass": True}]}, output="${OriginStreamName}_bypass")
    assert plan_profile(bypass, "cam").needs_job is False


def test_playlist_renditions_are_streams_of_their_own_with_their_bandwidth():
    playlists = [
        {
            "name": "ABR",
            "fileName": "abr",
            "renditions": [
                {"name": "720p", "video": "v720", "audio": "aac"},
                {"name": "360p", "video": "v360", "audio": "aac"},
                {"name": "source", "video": "src", "audio": "src_audio"},
            ],
        }
    ]
    encodes = {
        "videos": [V720, V360, {"name": "src", "bypass": True}],
        "audios": [AAC, {"name": "src_audio", "bypass": True}],
        "images": [{"codec": "jpeg", "width": 160, "height": 90}, {"codec": "webp"}],
    }
    plan = plan_profile(profile(encodes, playlists, output="${OriginStreamName}_o"), "cam")
    assert plan.needs_job
    assert plan.rendition_streams == ["cam_o_720p", "cam_o_360p"]
    variants = plan.playlists["abr"]
    assert [(v.stream_name, v.bandwidth) for v in variants] == [
        ("cam_o_720p", 1264000),
        ("cam_o_360p", 364000),
        ("cam", None),  # pass-through: the input itself, its bitrate measured
    ]
    assert [(i.codec, i.width, i.height, i.framerate) for i in plan.images] == [("jpeg", 160, 90, 1.0)]
    assert plan.skipped == ["image encode 'webp': only jpeg and png are made"]


def test_without_playlists_each_video_encode_is_a_rendition_with_the_first_rtmp_audio():
    encodes = {"videos": [V720, {"bypass": True}, {"name": "vp", "codec": "vp8"}], "audios": [OPUS, AAC]}
    plan = plan_profile(profile(encodes), "cam")
    assert [(r.name, r.stream_name, r.video["name"], r.audio["name"]) for r in plan.renditions] == [
        ("v720", "cam_v720", "v720", "aac")
    ]
    assert plan.skipped == ["video encode 'vp': vp8 cannot be published over RTMP", "rendition 'vp' left out"]


def test_unknown_encode_names_in_a_playlist_are_left_out_and_said():
    playlists = [{"name": "p", "fileName": "abr", "renditions": [{"name": "hd", "video": "nope", "audio": "aac"}]}]
    plan = plan_profile(profile({"videos": [V720], "audios": [AAC]}, playlists), "cam")
    assert plan.playlists == {"abr": []} and plan.needs_job is False
    assert plan.skipped == ["playlist 'abr' rendition 'hd': unknown encode ['nope']"]


@pytest.mark.parametrize(
    "template, output, origin",
    [
        ("${OriginStreamName}", "cam", "cam"),
        ("${OriginStreamName}_bypass", "cam_bypass", "cam"),
        ("live_${OriginStreamName}", "live_cam", "cam"),
        ("${OriginStreamName}_bypass", "cam", None),
        ("fixed", "fixed", None),
    ],
)
def test_origin_of_an_output_stream(template, output, origin):
    assert origin_of(template, output) == origin


def test_rendition_names_become_safe_stream_names():
    assert safe_name("HD 720p/fast") == "HD_720p_fast"
    assert safe_name("..") == "rendition"


def test_bypass_if_match():
    aac_track = {"kind": "audio", "codec": "AAC", "samplerate": 44100, "channels": 2}
    video_track = {"kind": "video", "codec": "H264", "width": 1280, "height": 720, "framerate": 30.0}
    assert bypass_matches({**AAC, "bypassIfMatch": {"codec": "eq"}}, aac_track)
    assert not bypass_matches({**OPUS, "bypassIfMatch": {"codec": "eq"}}, aac_track)
    assert bypass_matches({**AAC, "samplerate": 48000, "bypassIfMatch": {"samplerate": "lte"}}, aac_track)
    assert not bypass_matches({**AAC, "samplerate": 32000, "bypassIfMatch": {"samplerate": "lte"}}, aac_track)
    assert bypass_matches({**V720, "bypassIfMatch": {"codec": "eq", "height": "eq"}}, video_track)
    assert not bypass_matches({**V360, "bypassIfMatch": {"height": "eq"}}, video_track)
    assert not bypass_matches({**AAC, "bypassIfMatch": {"codec": "eq"}}, None)
    assert not bypass_matches({**AAC, "bypassIfMatch": {"colour": "eq"}}, aac_track)
    assert BYPASS == "bypass"
