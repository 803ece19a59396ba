"""Transcodes around streams (no media): a stream going live starts one per profile that encodes,
never one for a rendition; the end of a run stops it; the OME API shows renditions as outputs and
their cost in the stats; the engine's playlist lookup."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from apps.engine.control_plane import DatabaseControlPlane
from apps.engine.models import EngineNode
from apps.hosting.models import Application, OutputProfile
from apps.jobs.choices import JobState
from apps.streams.models import Stream
from apps.transcoding.models import Transcode
from apps.transcoding.services import end_run, playlist_variants, start_transcodes
from media_engine.hls.master import PlaylistVariant

pytestmark = pytest.mark.django_db
APP = "/v1/vhosts/default/apps/app"
ENCODES = {
    "videos": [{"name": "v360", "codec": "h264", "bitrate": 300000, "height": 360}],
    "audios": [{"name": "aac", "codec": "aac", "bitrate": 64000}],
}
PLAYLISTS = [{"name": "ABR", "fileName": "abr", "renditions": [{"name": "360p", "video": "v360", "audio": "aac"}]}]
VIDEO_TRACK = {"id": 0, "kind": "video", "codec": "H264", "bitrate": 290000, "width": 640, "height": 360,
               "framerate": 15.0, "keyframe_interval": 15, "has_bframes": False}  # fmt: skip


@pytest.fixture
def application() -> Application:
    return Application.objects.get(virtual_host__name="default", name="app")


@pytest.fixture
def abr(application) -> OutputProfile:
    return OutputProfile.objects.create(
        application=application, name="abr", output_stream_name="${OriginStreamName}", encodes=ENCODES,
        playlists=PLAYLISTS, position=1,
    )  # fmt: skip


@pytest.fixture
def node() -> EngineNode:
    return EngineNode.objects.create(node_id="node-a", hostname="a", rtmp_port=1935, media_http_port=3333)


def go_live(application, node, name: str, tracks=None) -> Stream:
    return Stream.objects.create(application=application, node=node, name=name, source_type="Rtmp",
                                 input_tracks=tracks or [])  # fmt: skip


def test_a_live_stream_gets_one_transcode_per_profile_that_encodes(
    application, abr, node, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        jobs = start_transcodes(go_live(application, node, "cam"))
    assert [(job.stream_name, job.profile.name, job.state) for job in jobs] == [("cam", "abr", JobState.READY)]
    assert len(queued) == 1  # handed to Celery; the shipped pass-through profile starts nothing
    assert Transcode.objects.count() == 1


def test_a_rendition_going_live_is_not_transcoded_again(application, abr, node, django_capture_on_commit_callbacks):
    Transcode.objects.create(application=application, stream_name="cam", profile=abr, state=JobState.STARTED,
                             rendition_streams=["cam_360p"])  # fmt: skip
    with django_capture_on_commit_callbacks() as queued:
        assert start_transcodes(go_live(application, node, "cam_360p")) == []
    assert queued == [] and Transcode.objects.count() == 1


def test_the_end_of_a_run_stops_the_transcode_until_the_stream_is_back(
    application, abr, node, django_capture_on_commit_callbacks
):
    job = Transcode.objects.create(application=application, stream_name="cam", profile=abr, state=JobState.READY)
    assert end_run(job) == "stopped"
    job.refresh_from_db()
    assert job.state == JobState.STOPPED and job.finished_at is not None
    # Back: the same row runs again.
    go_live(application, node, "cam")
    with django_capture_on_commit_callbacks() as queued:
        start_transcodes(Stream.objects.get(name="cam"))
    job.refresh_from_db()
    assert job.state == JobState.READY and len(queued) == 1


def test_stream_info_lists_renditions_as_outputs_and_the_list_hides_them(ome, application, abr, node):
    go_live(application, node, "cam")
    Transcode.objects.create(
        application=application, stream_name="cam", profile=abr, state=JobState.STARTED,
        rendition_streams=["cam_360p"],
        renditions=[{"name": "360p", "stream": "cam_360p", "video": ENCODES["videos"][0], "audio": "bypass"}],
    )  # fmt: skip
    info = ome.get(f"{APP}/streams/cam").json()["response"]
    planned = info["outputs"][1]
    assert planned["name"] == "cam_360p"
    assert planned["tracks"] == [
        {"id": 0, "type": "Video", "video": {"bitrate": "300000", "bypass": False, "codec": "H264", "height": 360}},
        {"id": 1, "type": "Audio", "audio": {"bypass": True}},
    ]
    # Once live, the rendition shows what it really is.
    go_live(application, node, "cam_360p", [VIDEO_TRACK])
    measured = ome.get(f"{APP}/streams/cam").json()["response"]["outputs"][1]["tracks"][0]["video"]
    assert (measured["width"], measured["height"], measured["bitrate"], measured["bypass"]) == (
        640,
        360,
        "290000",
        False,
    )
    assert ome.get(f"{APP}/streams").json()["response"] == ["cam"]


AUDIO_TRACK = {"id": 1, "kind": "audio", "codec": "AAC", "bitrate": 128000, "samplerate": 48000, "channels": 2,
               "channel_layout": "stereo"}  # fmt: skip
OPUS = {"bitrate": "96000", "bypass": False, "channel": 2, "codec": "OPUS", "samplerate": 48000}


def test_stream_info_outputs_list_the_tracks_players_get_with_the_opus_of_webrtc(ome, application, abr, node):
    # As the spec's example: the pass-through tracks, then the Opus track WebRTC viewers get.
    go_live(application, node, "cam", [VIDEO_TRACK, AUDIO_TRACK])
    Transcode.objects.create(
        application=application, stream_name="cam", profile=abr, state=JobState.STARTED,
        rendition_streams=["cam_360p"],
        renditions=[{"name": "360p", "stream": "cam_360p", "video": ENCODES["videos"][0], "audio": "bypass"}],
    )  # fmt: skip
    stream_output, rendition = ome.get(f"{APP}/streams/cam").json()["response"]["outputs"]
    assert stream_output == {
        "name": "cam",
        "tracks": [
            {"id": 0, "type": "Video", "video": {"bypass": True}},
            {"id": 1, "type": "Audio", "audio": {"bypass": True}},
            {"id": 2, "type": "Audio", "audio": OPUS},
        ],
    }
    assert rendition["name"] == "cam_360p"
    assert [(track["id"], track["type"]) for track in rendition["tracks"]] == [(0, "Video"), (1, "Audio"), (2, "Audio")]
    assert rendition["tracks"][2]["audio"] == OPUS
    # A video-only stream offers no audio at all.
    Stream.objects.filter(name="cam").update(input_tracks=[VIDEO_TRACK])
    Transcode.objects.all().delete()
    (only,) = ome.get(f"{APP}/streams/cam").json()["response"]["outputs"]
    assert only["tracks"] == [{"id": 0, "type": "Video", "video": {"bypass": True}}]


def test_stats_show_the_cpu_of_running_transcodes(ome, application, abr, node):
    go_live(application, node, "cam")
    Transcode.objects.create(application=application, stream_name="cam", profile=abr, state=JobState.STARTED,
                             cpu_percent=12.5, cpu_seconds=30.25)  # fmt: skip
    expected = {"jobs": 1, "cpuUsage": 12.5, "cpuTime": 30.25}
    assert (
        ome.get("/v1/stats/current/vhosts/default/apps/app/streams/cam").json()["response"]["transcoding"] == expected
    )
    assert ome.get("/v1/stats/current/vhosts/default/apps/app").json()["response"]["transcoding"] == expected
    assert ome.get("/v1/stats/current/vhosts/default").json()["response"]["transcoding"] == expected


def test_the_engine_finds_a_profile_playlist_by_output_stream_and_file_name(application, abr, node):
    assert playlist_variants(application, "cam", "abr") == [("cam_360p", 364000)]
    assert playlist_variants(application, "cam", "other") is None
    lookup = async_to_sync(DatabaseControlPlane(node).output_playlist)
    assert lookup("default", "app", "cam", "abr") == [PlaylistVariant("cam_360p", 364000)]
    assert lookup("default", "nope", "cam", "abr") is None
