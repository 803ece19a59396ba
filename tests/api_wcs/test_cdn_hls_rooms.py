"""WCS /cdn/* (nodes, states, routes, profiles), /hls/terminate|profiles and /sfu/stats against the
real rows: node states steer where new pulls go, profiles are validated and stored, and every
method of the table answers its documented statuses and texts. (/hls/terminate with a real
engine: tests/integration/test_wcs.py.)"""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.api_wcs.urls import METHODS
from apps.cdn.models import CdnProfile
from apps.engine.models import EngineNode
from apps.hosting.models import Application
from apps.streams.models import Stream

pytestmark = pytest.mark.django_db
API = "/rest-api"
PROFILE = {"audio": {"codec": "aac", "rate": 48000}, "video": {"width": 1280, "height": 720, "fps": 30, "gop": 90}}


def node(node_id: str, alive: bool = True, hostname: str | None = None) -> EngineNode:
    heartbeat = timezone.now() - (timedelta(0) if alive else timedelta(hours=1))
    return EngineNode.objects.create(
        node_id=node_id, hostname=hostname or socket.gethostname(), rtmp_port=1935, media_http_port=3333,
        last_heartbeat=heartbeat,
    )  # fmt: skip


def live(name: str, on: EngineNode) -> Stream:
    return Stream.objects.create(
        application=Application.objects.get(name="app"), node=on, name=name, source_type="Rtmp"
    )


def test_the_table_rows_are_routed():
    routes = {method.route for method in METHODS}
    for route in [
        "cdn/show_nodes", "cdn/show_state", "cdn/enforce_state", "cdn/show_routes", "cdn/stream/show_routes",
        "cdn/profile/add", "cdn/profile/modify", "cdn/profile/print", "cdn/profile/remove", "cdn/remove_node",
        "cdn/connection/reset_inbound", "cdn/connection/reset_outbound", "cdn/connection/reset_all",
        "hls/terminate", "hls/profiles", "sfu/stats", "push/mute", "push/unmute", "push/sound_on", "push/sound_off",
    ]:  # fmt: skip
        assert route in routes


def test_nodes_states_and_where_new_pulls_go(wcs):
    origin = node("origin-1")
    node("gone", alive=False)
    nodes = wcs.post(f"{API}/cdn/show_nodes").json()
    load = {"streams": 0, "viewers": 0}
    assert nodes == [
        {"id": "gone", "globalState": "PASSIVE", "processingState": "NEW_STREAMS_ALLOWED", "role": "ORIGIN", **load},
        {"id": "origin-1", "globalState": "ACTIVE", "processingState": "NEW_STREAMS_ALLOWED", "role": "ORIGIN", **load},
    ]
    assert wcs.post(f"{API}/cdn/show_state").json() == "NEW_STREAMS_ALLOWED"
    assert EngineNode.for_new_streams() == origin

    bad = wcs.post(f"{API}/cdn/enforce_state", {"state": "SLEEPING"})
    assert bad.status_code == 400 and bad.json()["message"].startswith("Invalid state")
    assert wcs.post(f"{API}/cdn/enforce_state", {"state": "GROUP_CONNECTION_ALLOWED"}).status_code == 200
    assert wcs.post(f"{API}/cdn/show_state").json() == "GROUP_CONNECTION_ALLOWED"
    assert EngineNode.for_new_streams() is None, "a node that takes no new streams gets no new pull"
    assert wcs.post(f"{API}/cdn/enforce_state", {"state": "NEW_STREAMS_ALLOWED"}).status_code == 200
    assert EngineNode.for_new_streams() == origin


def test_remove_node_only_removes_dead_nodes(wcs):
    node("alive")
    node("dead", alive=False)
    assert wcs.post(f"{API}/cdn/remove_node", {"nodeId": "nope"}).json()["message"] == "Node not found"
    refused = wcs.post(f"{API}/cdn/remove_node", {"nodeId": "alive"})
    assert (refused.status_code, refused.json()["message"]) == (400, "Active node can't be removed")
    assert wcs.post(f"{API}/cdn/remove_node", {"nodeId": "dead"}).status_code == 200
    assert list(EngineNode.objects.values_list("node_id", flat=True)) == ["alive"]
    assert wcs.post(f"{API}/cdn/remove_node", {}).status_code == 400
    for method in ("reset_inbound", "reset_outbound"):
        assert wcs.post(f"{API}/cdn/connection/{method}", {"nodeId": "alive"}).status_code == 200
        missing = wcs.post(f"{API}/cdn/connection/{method}", {"nodeId": "dead"})
        assert (missing.status_code, missing.json()["message"]) == (404, "Node not found")
    assert wcs.post(f"{API}/cdn/connection/reset_all").status_code == 200


def test_routes_of_live_streams(wcs):
    assert wcs.post(f"{API}/cdn/show_routes").status_code == 404
    origin = node("origin-1")
    stream = live("cam", origin)
    assert wcs.post(f"{API}/cdn/show_routes").json() == {f"0-origin-1-{stream.pk}": "cam"}
    assert wcs.post(f"{API}/cdn/stream/show_routes", {"streamName": "cam"}).json() == {
        "streamName": "cam",
        "route": ["origin-1"],
    }
    assert wcs.post(f"{API}/cdn/stream/show_routes", {"streamName": "nope"}).status_code == 404
    assert wcs.post(f"{API}/cdn/stream/show_routes", {}).status_code == 400


def test_transcoding_profiles(wcs):
    assert wcs.post(f"{API}/cdn/profile/print").json()["message"] == "Not Found"
    assert wcs.post(f"{API}/cdn/profile/add", {"name": "-720p", "profile": PROFILE}).status_code == 200
    again = wcs.post(f"{API}/cdn/profile/add", {"name": "-720p", "profile": PROFILE})
    assert (again.status_code, again.json()["message"]) == (400, "Bad Request: profile -720p exists")
    assert wcs.post(f"{API}/cdn/profile/print").json() == [{"name": "-720p", "profile": PROFILE}]

    for profile, text in [
        ({}, "profile must have an audio or a video part"),
        ({"video": {"height": 100000}}, "profile.video.height must be a whole number from 16 to 4320"),
        ({"video": {"codec": "hevc"}}, "profile.video.codec 'hevc' is not supported"),
        ({"audio": {"volume": 3}}, "profile.audio.volume is not a known field"),
        ({"video": {"fps": True}}, "profile.video.fps must be a whole number"),
        ({"subtitles": {}}, "profile must have an audio or a video part"),
    ]:
        refused = wcs.post(f"{API}/cdn/profile/modify", {"name": "-720p", "profile": profile})
        assert refused.status_code == 400 and text in refused.json()["message"], refused.json()
    assert wcs.post(f"{API}/cdn/profile/add", {"name": "bad name!", "profile": PROFILE}).status_code == 400
    assert CdnProfile.objects.get().video == PROFILE["video"], "refused changes change nothing"

    smaller = {"video": {"height": 360, "bitrate": 600}}
    assert wcs.post(f"{API}/cdn/profile/modify", {"name": "-720p", "profile": smaller}).status_code == 200
    assert wcs.post(f"{API}/cdn/profile/print").json() == [{"name": "-720p", "profile": smaller}]
    missing = wcs.post(f"{API}/cdn/profile/modify", {"name": "-1080p", "profile": PROFILE})
    assert (missing.status_code, missing.json()["message"]) == (404, "Not Found")
    assert wcs.post(f"{API}/cdn/profile/remove", {"name": "-720p"}).status_code == 200
    assert wcs.post(f"{API}/cdn/profile/remove", {"name": "-720p"}).status_code == 404
    assert not CdnProfile.objects.exists()


def test_hls_terminate_and_profiles_of_a_stream_without_engine(wcs):
    assert wcs.post(f"{API}/hls/terminate", {"name": "nope"}).json()["message"] == "Not found"
    stream = live("cam", node("origin-1"))
    profile = wcs.post(f"{API}/hls/profiles", {"hlsId": "cam"})
    assert profile.status_code == 200
    assert profile.json()["profileName"] == "source" and profile.json()["subscribers"] == 0
    assert wcs.post(f"{API}/hls/profiles", {"hlsId": "cam", "profileName": "-720p"}).status_code == 404
    assert wcs.post(f"{API}/hls/profiles", {}).status_code == 400
    # The command goes to the node's Channels group on the real Redis (no engine listens here).
    assert wcs.post(f"{API}/hls/terminate", {"name": "cam"}).status_code == 200
    stream.refresh_from_db()
    assert not stream.hls_enabled
    assert wcs.post(f"{API}/hls/find_all").status_code == 404
    assert wcs.post(f"{API}/hls/terminate", {"name": "cam"}).status_code == 404
    assert wcs.post(f"{API}/hls/startup", {"name": "cam"}).status_code == 200
    stream.refresh_from_db()
    assert stream.hls_enabled and wcs.post(f"{API}/hls/find_all").json()[0]["hlsId"] == "cam"


def test_sfu_rooms_do_not_exist(wcs):
    missing = wcs.post(f"{API}/sfu/stats", {"roomName": "room1"})
    assert (missing.status_code, missing.json()["message"]) == (404, "Not found: no SFU room room1")
    assert wcs.post(f"{API}/sfu/stats", {}).status_code == 400
