"""The origin-edge cluster over the database: node roles and load in /cdn/show_nodes, where an edge
pulls a stream from (`locate`), the routes edges report (/cdn/show_routes, /cdn/stream/show_routes),
enforce_state taking a node out of routing, and CDN profiles started as WCS transcoders on request.
(With real engine processes: tests/integration/test_cdn_edges.py.)"""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from apps.cdn import services
from apps.cdn.models import CdnProfile, StreamRoute
from apps.cdn.services import MirrorState
from apps.engine.choices import NodeRole, ProcessingState
from apps.engine.control_plane import DatabaseControlPlane, application_config
from apps.engine.models import EngineNode
from apps.engine.runner import heartbeat
from apps.hosting.models import Application
from apps.streams.models import Stream
from apps.transcoding.models import WcsTranscoder
from media_engine import internal_auth
from media_engine.admission import PUBLISH, AdmissionRequest, admit
from media_engine.registry import StreamKey
from tests.conftest import OME_AUTH

pytestmark = pytest.mark.django_db
API = "/rest-api"


def node(node_id: str, role: str = NodeRole.ORIGIN, alive: bool = True, port: int = 1935) -> EngineNode:
    heartbeat_at = timezone.now() - (timedelta(0) if alive else timedelta(hours=1))
    return EngineNode.objects.create(
        node_id=node_id, hostname=socket.gethostname(), rtmp_port=port, media_http_port=port + 1,
        last_heartbeat=heartbeat_at, role=role,
    )  # fmt: skip


def live(name: str, on: EngineNode) -> Stream:
    return Stream.objects.create(
        application=Application.objects.get(name="app"), node=on, name=name, source_type="Rtmp"
    )


def mirror(name: str, origin: str, viewers: int = 1) -> MirrorState:
    return MirrorState("default", "app", name, origin, time.time(), viewers, 1000, "playing")


def test_an_edge_finds_the_origin_holding_a_stream():
    origin = node("origin-1", port=2000)
    node("edge-1", NodeRole.EDGE)
    live("cam", origin)
    holder = services.locate("edge-1", "default", "app", "cam")
    assert holder.origin == "origin-1"
    assert holder.url.startswith("rtmp://127.0.0.1:2000/app/cam?")
    assert internal_auth.JOB_QUERY_KEY in holder.url, "the pull gets past the origin's access control"
    assert holder.http_base == "http://127.0.0.1:2001"
    assert services.locate("edge-1", "default", "app", "nope") is None, "an unknown stream: None at once"
    assert services.locate("edge-1", "default", "other-app", "cam") is None


def test_an_edge_never_pulls_from_a_dead_node_or_a_node_out_of_routing():
    origin = node("origin-1", alive=False)
    edge = node("edge-1", NodeRole.EDGE)
    live("cam", origin)
    assert services.locate("edge-1", "default", "app", "cam") is None
    origin.last_heartbeat = timezone.now()
    origin.save()
    assert services.locate("edge-1", "default", "app", "cam") is not None
    origin.processing_state = ProcessingState.GROUP_CONNECTION_ALLOWED
    origin.save()
    assert services.locate("edge-1", "default", "app", "cam") is None, "the origin is out of routing"
    origin.processing_state = ProcessingState.NEW_STREAMS_ALLOWED
    origin.save()
    edge.processing_state = ProcessingState.GROUP_CONNECTION_ALLOWED
    edge.save()
    assert services.locate("edge-1", "default", "app", "cam") is None, "the edge is out of routing"


def test_an_edge_pulls_a_rendition_published_on_another_edge_but_never_from_itself():
    # An edge's pulls have no rows: a live row on an edge is a CDN rendition published there.
    edge = node("edge-2", NodeRole.EDGE, port=3000)
    live("cam-240p", edge)
    node("edge-3", NodeRole.EDGE)
    assert services.locate("edge-3", "default", "app", "cam-240p").origin == "edge-2"
    assert services.locate("edge-2", "default", "app", "cam-240p") is None
    assert services.live_on("edge-2", "default", "app", "cam-240p")
    assert not services.live_on("edge-3", "default", "app", "cam-240p")


def test_edges_take_no_new_pulled_streams():
    node("edge-1", NodeRole.EDGE)
    node("transcoder-1", NodeRole.TRANSCODER)
    assert EngineNode.for_new_streams() is None
    origin = node("origin-1")
    assert EngineNode.for_new_streams() == origin


def test_an_edge_refuses_publishers_but_not_platform_jobs(settings):
    settings.ENGINE_NODE_ROLE = "edge"
    rules = application_config(Application.objects.get(name="app")).access
    request = AdmissionRequest(
        PUBLISH, "rtmp", "rtmp://edge/app/cam", "10.0.0.1", 5000, "cam", vhost="default", app="app"
    )
    decision = async_run(admit(rules, request))
    assert not decision.allowed
    assert decision.reason == "this node is an edge: publish to an origin"
    job_url = EngineNode(address="edge", rtmp_port=1935, media_http_port=3333).rtmp_url("app", "cam", publish=True)
    job = AdmissionRequest(PUBLISH, "rtmp", job_url, "127.0.0.1", 5000, "cam", vhost="default", app="app")
    assert async_run(admit(rules, job)).allowed
    settings.ENGINE_NODE_ROLE = "origin"
    rules = application_config(Application.objects.get(name="app")).access
    assert async_run(admit(rules, request)).allowed


def async_run(coroutine):
    import asyncio

    return asyncio.run(coroutine)


def test_heartbeats_store_the_load_and_the_routes_of_an_edge(wcs):
    origin = node("origin-1")
    edge = node("edge-1", NodeRole.EDGE)
    stream = live("cam", origin)
    heartbeat(edge, [], (1, 3), [mirror("cam", "origin-1", 3), mirror("gone", "origin-1")])
    route = StreamRoute.objects.get()
    assert (route.edge, route.origin, route.stream, route.viewers, route.name) == (edge, origin, stream, 3, "cam")
    nodes = {item["id"]: item for item in wcs.post(f"{API}/cdn/show_nodes").json()}
    assert nodes["edge-1"] == {
        "id": "edge-1", "globalState": "ACTIVE", "processingState": "NEW_STREAMS_ALLOWED", "role": "EDGE",
        "streams": 1, "viewers": 3,
    }  # fmt: skip
    assert nodes["origin-1"]["role"] == "ORIGIN"
    assert wcs.post(f"{API}/cdn/show_routes").json() == {
        f"0-origin-1-{stream.pk}": "cam",
        f"{route.pk}-origin-1-edge-1": "cam",
    }
    node("edge-2", NodeRole.EDGE)
    heartbeat(EngineNode.objects.get(node_id="edge-2"), [], (1, 1), [mirror("cam", "origin-1")])
    assert wcs.post(f"{API}/cdn/stream/show_routes", {"streamName": "cam"}).json() == {
        "streamName": "cam",
        "route": ["origin-1", "edge-1", "edge-2"],
    }
    stats = wcs.get("/v1/stats/current/vhosts/default/apps/app/streams/cam", HTTP_AUTHORIZATION=OME_AUTH).json()[
        "response"
    ]
    assert stats["edges"] == [{"node": "edge-1", "viewers": 3}, {"node": "edge-2", "viewers": 1}]
    heartbeat(edge, [], (0, 0), [])  # the pull ended
    assert list(StreamRoute.objects.values_list("edge__node_id", flat=True)) == ["edge-2"]


def test_routes_of_dead_nodes_and_ended_streams_go():
    origin = node("origin-1")
    edge = node("edge-1", NodeRole.EDGE)
    stream = live("cam", origin)
    heartbeat(edge, [], (1, 1), [mirror("cam", "origin-1")])
    assert StreamRoute.objects.count() == 1
    EngineNode.objects.filter(pk=edge.pk).update(last_heartbeat=timezone.now() - timedelta(hours=1))
    services.clean_routes()
    assert StreamRoute.objects.count() == 0
    heartbeat(edge, [], (1, 1), [mirror("cam", "origin-1")])
    stream.end()
    services.clean_routes()
    assert StreamRoute.objects.count() == 0


def test_enforce_state_of_one_node(wcs):
    node("origin-1")
    node("edge-1", NodeRole.EDGE)
    answer = wcs.post(f"{API}/cdn/enforce_state", {"state": "GROUP_CONNECTION_ALLOWED", "nodeId": "edge-1"})
    assert answer.status_code == 200
    states = dict(EngineNode.objects.values_list("node_id", "processing_state"))
    assert states == {"edge-1": "GROUP_CONNECTION_ALLOWED", "origin-1": "NEW_STREAMS_ALLOWED"}
    missing = wcs.post(f"{API}/cdn/enforce_state", {"state": "GROUP_CONNECTION_ALLOWED", "nodeId": "nope"})
    assert (missing.status_code, missing.json()["message"]) == (404, "Node not found")


def test_a_profile_rendition_is_one_wcs_transcoder_on_a_transcoder_node(django_capture_on_commit_callbacks):
    origin = node("origin-1")
    node("edge-1", NodeRole.EDGE)
    transcoder = node("transcoder-1", NodeRole.TRANSCODER)
    live("cam", origin)
    video = {"codec": "h264", "width": 640, "height": 360, "bitrate": 500, "gop": 50}
    CdnProfile.objects.create(name="-360p", video=video, audio={"codec": "aac", "rate": 44100})
    assert services.locate("edge-1", "default", "app", "cam-360p") is None, "not transcoded yet"
    for _ in range(2):  # a second viewer (or edge) shares the first one's transcode
        assert services.start_profile_transcode("edge-1", "default", "app", "cam-360p")
    job = WcsTranscoder.objects.get()
    assert (job.stream_name, job.local_stream_name, job.output_node) == ("cam", "cam-360p", transcoder)
    assert job.encoder == {
        "type": "H264", "width": 640, "height": 360, "bitrate": 500, "keyFrameInterval": 50,
        "cdnAudio": {"rate": 44100},
    }  # fmt: skip
    live("cam-360p", transcoder)
    assert services.locate("edge-1", "default", "app", "cam-360p").origin == "transcoder-1"
    assert not services.start_profile_transcode("edge-1", "default", "app", "nope-360p"), "no such input"
    assert not services.start_profile_transcode("edge-1", "default", "app", "cam-1080p"), "no such profile"


def test_without_an_alive_transcoder_the_rendition_is_published_on_the_edge_that_asked():
    node("origin-1")
    live("cam", EngineNode.objects.get())
    edge = node("edge-1", NodeRole.EDGE)
    node("transcoder-1", NodeRole.TRANSCODER, alive=False)
    CdnProfile.objects.create(name="240p", video={"height": 240})
    assert services.start_profile_transcode("edge-1", "default", "app", "cam-240p")
    assert WcsTranscoder.objects.get().output_node == edge


def test_a_vp8_profile_cannot_reach_an_edge_over_rtmp():
    live("cam", node("origin-1"))
    node("edge-1", NodeRole.EDGE)
    CdnProfile.objects.create(name="-vp8", video={"codec": "vp8", "height": 240})
    with pytest.raises(services.TranscodeRefused):
        services.start_profile_transcode("edge-1", "default", "app", "cam-vp8")


def test_a_profile_transcode_stops_once_no_edge_pulls_its_rendition():
    origin = node("origin-1")
    edge = node("edge-1", NodeRole.EDGE)
    live("cam", origin)
    CdnProfile.objects.create(name="-240p", video={"height": 240})
    assert services.start_profile_transcode("edge-1", "default", "app", "cam-240p")
    job = WcsTranscoder.objects.get()
    WcsTranscoder.objects.filter(pk=job.pk).update(state="started", started_at=timezone.now())
    output = live("cam-240p", origin)
    assert services.stop_unwatched_profile_transcodes(grace=30) == 0, "new: its first edge may not pull yet"
    Stream.objects.filter(pk=output.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    heartbeat(edge, [], (1, 1), [mirror("cam-240p", "origin-1")])
    assert services.stop_unwatched_profile_transcodes(grace=30) == 0, "an edge pulls it"
    job.refresh_from_db()
    assert not job.stop_requested
    heartbeat(edge, [], (0, 0), [])  # the edge's pull ended: its heartbeat stops the transcode
    job.refresh_from_db()
    assert job.stop_requested


def test_the_workers_of_an_edge_agree_on_the_one_that_pulls_each_stream(settings):
    settings.ENGINE_NODE_ROLE = NodeRole.EDGE
    workers = [node(f"edge-m.{i}", NodeRole.EDGE, port=4000 + 10 * i) for i in range(3)]
    node("edge-m.3", NodeRole.EDGE, alive=False)  # a dead worker never pulls for the others
    node("edge-mx.0", NodeRole.EDGE)  # another edge whose id starts alike: no sibling
    planes = [DatabaseControlPlane(worker, siblings_of="edge-m") for worker in workers]
    chosen = set()
    for index in range(30):
        key = StreamKey("default", "app", f"cam{index}")
        answers = [async_to_sync(plane.locate)(key) for plane in planes]
        pulling = [worker.node_id for worker, answer in zip(workers, answers, strict=True) if answer is None]
        assert len(pulling) == 1, (key, answers)  # exactly one worker pulls it from the cluster itself
        assert {answer.origin for answer in answers if answer is not None} == set(pulling)
        url = next(answer.url for answer in answers if answer is not None)
        assert url.startswith(f"rtmp://127.0.0.1:{4000 + 10 * int(pulling[0][-1])}/app/cam{index}?")
        chosen.add(pulling[0])
    assert chosen == {"edge-m.0", "edge-m.1", "edge-m.2"}, "the streams spread over the workers"
    settings.ENGINE_NODE_ROLE = NodeRole.ORIGIN
    assert async_to_sync(planes[0].locate)(StreamKey("default", "app", "cam0")) is None, "origins: published only"
