"""An origin-edge cluster on one machine: one origin, two edges and a transcoder as separate `runengine`
processes (own ports, STREAMHUB_NODE_ROLE each), a third edge run as two worker processes, one API
server, one Celery worker, one database and one Redis. ffmpeg publishes to the origin; ffprobe plays
RTMP, HLS and LL-HLS from both edges, aiortc plays WHEP from an edge; each edge pulls a stream once
whatever its viewers (counted on the origin), the two-worker edge too with viewers on both workers,
and stops `STREAMHUB_EDGE_LINGER` s after the last one; a CDN profile's rendition is probed at its
height, made on the transcoder node, or on the edge once no transcoder is alive; an edge out of
routing gets no new routes; edges refuse publishers; unknown streams are 404 at once; killing the
origin ends the stream on the edges."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin

import aiohttp
import pytest
import requests

from tests.integration.conftest import ROOT, LiveStreamHub, free_port, wait_for

pytestmark = pytest.mark.services
API = "/rest-api"
LINGER = 3.0


class Engine:
    def __init__(self, node_id: str, role: str, processes: int = 1) -> None:
        self.node_id = node_id
        self.role = role
        self.processes = processes  # several: worker rows "<node_id>.<i>" behind the same ports
        self.rtmp_port = free_port()
        self.media_port = free_port()
        self.rtmp = f"rtmp://127.0.0.1:{self.rtmp_port}/app"
        self.media = f"http://127.0.0.1:{self.media_port}/app"


def start_engine(hub: LiveStreamHub, engine: Engine) -> None:
    env = {
        **hub.env,
        "STREAMHUB_NODE_ID": engine.node_id,
        "STREAMHUB_NODE_ROLE": engine.role,
        "STREAMHUB_EDGE_LINGER": str(LINGER),
        "STREAMHUB_SRT_PORT": "0",
        "STREAMHUB_MEDIA_HTTPS_PORT": "0",
        "STREAMHUB_HLS_IDLE_TIMEOUT": "5",
        "STREAMHUB_HLS_VIEWER_WINDOW": "3",
        "STREAMHUB_EDGE_TRANSCODE_IDLE": "5",
        "STREAMHUB_ENGINE_PROCESSES": str(engine.processes),
    }
    command = [sys.executable, "manage.py", "runengine", "--rtmp-host", "127.0.0.1", "--rtmp-port",
               str(engine.rtmp_port), "--http-host", "127.0.0.1", "--http-port", str(engine.media_port)]  # fmt: skip
    with open(hub.folder / f"{engine.node_id}.log", "ab") as log:
        hub.processes[engine.node_id] = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


class Cluster:
    def __init__(self, hub: LiveStreamHub) -> None:
        self.hub = hub
        self.origin = Engine("origin-1", "origin")
        self.edges = [Engine("edge-a", "edge"), Engine("edge-b", "edge")]
        self.transcoder = Engine("transcoder-1", "transcoder")
        self.multi_edge = Engine("edge-m", "edge", processes=2)  # rows edge-m.0 and edge-m.1

    def wcs(self, method: str, body: dict | None = None) -> requests.Response:
        return requests.post(f"{self.hub.url}{API}/{method}", json=body or {}, timeout=10)

    def nodes(self) -> dict[str, dict]:
        return {node["id"]: node for node in self.wcs("cdn/show_nodes").json()}

    def routes(self, name: str) -> list[str]:
        """``/cdn/stream/show_routes`` of ``name``: its holding node, then the edges pulling it."""
        return self.wcs("cdn/stream/show_routes", {"streamName": name}).json()["route"]

    def pulled_routes(self, name: str) -> list[str]:
        """The routes of ``name`` once an edge's pull shows (edges write them on their heartbeat)."""
        return wait_for(lambda: (routes := self.routes(name))[1:] and routes, 15)

    def live_names(self) -> list[str]:
        return self.hub.api("GET", "/v1/vhosts/default/apps/app/streams").json()["response"]

    def ome_stats(self, name: str) -> dict:
        return self.hub.api("GET", f"/v1/stats/current/vhosts/default/apps/app/streams/{name}").json()["response"]

    def logs(self) -> str:
        names = ("origin-1", "edge-a", "edge-b", "edge-m")
        return "\n".join(f"--- {name}\n{self.hub.log(name)[-3000:]}" for name in names)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_url):
    hub = LiveStreamHub(tmp_path_factory.mktemp("cluster"), redis_url)
    hub.env["STREAMHUB_ENGINE_HEARTBEAT"] = "0.5"
    hub.start(worker=True)
    cluster = Cluster(hub)
    for engine in [cluster.origin, *cluster.edges, cluster.transcoder, cluster.multi_edge]:
        start_engine(hub, engine)
    wait_for(lambda: len([n for n in cluster.nodes().values() if n["globalState"] == "ACTIVE"]) == 6, 60, cluster.logs)
    # One-second segments and short LL-HLS parts keep the test short (every node reads the app).
    patch = {"publishers": {"hls": {"segmentDuration": 1, "segmentCount": 5}, "llhls": {"chunkDuration": 0.5}}}
    assert hub.api("PATCH", "/v1/vhosts/default/apps/app", json=patch).status_code == 200
    time.sleep(2.5)  # the engines' application cache
    yield cluster
    hub.stop()


def publish(url: str, seconds: float = 120, size: str = "640x360") -> subprocess.Popen:
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-t", str(seconds), "-f", "flv", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def ffprobe(url: str, timeout: float = 60) -> dict:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-rw_timeout", "15000000", "-show_streams", "-of", "json", url],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, f"{url}: {result.stderr}"
    return {stream["codec_type"]: stream for stream in json.loads(result.stdout)["streams"]}


def probe_until(url: str, timeout: float = 60, describe=lambda: "") -> dict:
    """ffprobe ``url`` until it shows streams, as a player retries (the first request may come before
    the edge's pull has the tracks, or before a rendition's transcode is up, on a loaded machine)."""
    failures: list[str] = []

    def attempt() -> dict | None:
        try:
            return ffprobe(url) or None
        except (AssertionError, subprocess.TimeoutExpired) as error:
            failures.append(str(error)[-300:])
            return None

    return wait_for(attempt, timeout, lambda: f"{failures[-3:]} {describe()}")


def player(url: str) -> subprocess.Popen:
    """A viewer that keeps playing (decodes nothing: copies into the void)."""
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-rw_timeout", "15000000", "-i", url, "-c", "copy", "-f", "null", "-"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def live_on_origin(cluster: Cluster, name: str, publisher: subprocess.Popen) -> None:
    def live() -> bool:
        assert publisher.poll() is None, publisher.stderr.read()
        answer = cluster.hub.api("GET", f"/v1/vhosts/default/apps/app/streams/{name}")
        return answer.status_code == 200 and len(answer.json()["response"]["input"]["tracks"]) == 2

    wait_for(live, 30, cluster.logs)


def rtmp_pulls(cluster: Cluster, name: str) -> int:
    """The origin's RTMP players of ``name``: one per edge that pulls it."""
    return cluster.ome_stats(name)["connections"].get("rtmp", 0)


def test_nodes_show_their_role_and_edges_refuse_publishers(cluster):
    nodes = cluster.nodes()
    assert {node_id: node["role"] for node_id, node in nodes.items()} == {
        "origin-1": "ORIGIN", "edge-a": "EDGE", "edge-b": "EDGE", "transcoder-1": "TRANSCODER",
        "edge-m.0": "EDGE", "edge-m.1": "EDGE",
    }  # fmt: skip
    assert all("streams" in node and "viewers" in node for node in nodes.values())
    refused = publish(f"{cluster.edges[0].rtmp}/refused", seconds=5)
    assert refused.wait(30) != 0
    assert "this node is an edge: publish to an origin" in cluster.hub.log("edge-a")
    offer = asyncio.run(whip_offer())
    whip = requests.post(
        f"{cluster.edges[0].media}/refused?direction=whip", data=offer, headers={"Content-Type": "application/sdp"}
    )
    assert (whip.status_code, whip.text) == (403, "access denied: this node is an edge: publish to an origin\n")
    assert cluster.hub.api("GET", "/v1/vhosts/default/apps/app/streams/refused").status_code == 404


async def whip_offer() -> str:
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    for kind in ("video", "audio"):
        pc.addTransceiver(kind, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def test_an_unknown_stream_is_a_404_at_once(cluster):
    # "At once": well within the mirror's connect timeout (5 s) and the player's 15 s read timeout.
    for edge in cluster.edges:
        for path in ("nothing/llhls.m3u8", "nothing/ts:playlist.m3u8"):
            started = time.monotonic()
            assert requests.get(f"{edge.media}/{path}", timeout=10).status_code == 404
            assert time.monotonic() - started < 3, f"{path}: not found at once"
        started = time.monotonic()
        command = ["ffprobe", "-v", "error", "-rw_timeout", "15000000", f"{edge.rtmp}/nothing"]
        assert subprocess.run(command, capture_output=True, timeout=30).returncode != 0
        assert time.monotonic() - started < 10, "RTMP play of an unknown stream: refused, not timed out"


def test_edges_play_a_stream_of_the_origin_with_one_pull_each(cluster):
    publisher = publish(f"{cluster.origin.rtmp}/cam")
    viewers: list[subprocess.Popen] = []
    try:
        live_on_origin(cluster, "cam", publisher)
        for edge in cluster.edges:
            for url in (f"{edge.rtmp}/cam", f"{edge.media}/cam/ts:playlist.m3u8", f"{edge.media}/cam/llhls.m3u8"):
                probe = probe_until(url, 60, cluster.logs)
                assert set(probe) == {"video", "audio"}, url
                assert (probe["video"]["codec_name"], probe["video"]["height"]) == ("h264", 360)
        # Many viewers on each edge: still one pull per edge on the origin.
        viewers = [player(f"{edge.rtmp}/cam") for edge in cluster.edges for _ in range(4)]
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(ffprobe, [f"{edge.media}/cam/llhls.m3u8" for edge in cluster.edges for _ in range(3)]))
        wait_for(lambda: sum(cluster.nodes()[edge.node_id]["viewers"] >= 4 for edge in cluster.edges) == 2, 15)
        assert rtmp_pulls(cluster, "cam") == 2, cluster.ome_stats("cam")["connections"]
        edges = cluster.ome_stats("cam")["edges"]
        assert [edge["node"] for edge in edges] == ["edge-a", "edge-b"]
        assert all(edge["viewers"] >= 4 for edge in edges), edges
        routes = cluster.wcs("cdn/stream/show_routes", {"streamName": "cam"}).json()
        assert routes["route"][0] == "origin-1" and sorted(routes["route"][1:]) == ["edge-a", "edge-b"]
        assert sorted(cluster.wcs("cdn/show_routes").json().values()) == ["cam", "cam", "cam"]
        stop(*viewers)
        # The pulls end LINGER s after the last viewer (HLS viewers count until their window ends).
        wait_for(lambda: rtmp_pulls(cluster, "cam") == 0, LINGER + 25, cluster.logs)
        wait_for(lambda: cluster.routes("cam") == ["origin-1"], 10)
        assert publisher.poll() is None, "the origin keeps its stream"
    finally:
        stop(*viewers, publisher)


def test_an_edge_with_two_workers_pulls_a_stream_once(cluster):
    """Viewers land on both worker processes of edge-m (the kernel spreads the connections): the
    worker that pulls the stream serves it, its sibling mirrors (RTMP) or proxies (HLS) from it."""
    edge = cluster.multi_edge
    publisher = publish(f"{cluster.origin.rtmp}/multi")
    viewers: list[subprocess.Popen] = []
    try:
        live_on_origin(cluster, "multi", publisher)
        probe = probe_until(f"{edge.media}/multi/llhls.m3u8", 60, cluster.logs)
        assert probe["video"]["height"] == 360
        routes = cluster.pulled_routes("multi")
        puller = routes[1]
        sibling = {"edge-m.0": "edge-m.1", "edge-m.1": "edge-m.0"}[puller]

        def sibling_has_players() -> bool:
            nodes = cluster.nodes()
            if nodes[sibling]["viewers"] > 0:
                return True
            if nodes[puller]["viewers"] >= len(viewers) and len(viewers) < 24:  # all landed on the puller
                viewers.extend(player(f"{edge.rtmp}/multi") for _ in range(4))
            return False

        wait_for(sibling_has_players, 60, cluster.logs)
        with ThreadPoolExecutor(4) as pool:  # HLS and LL-HLS requests land on both workers too
            urls = [f"{edge.media}/multi/{path}" for path in ("llhls.m3u8", "ts:playlist.m3u8") for _ in range(2)]
            assert all(set(probe) == {"video", "audio"} for probe in pool.map(ffprobe, urls))
        assert all(viewer.poll() is None for viewer in viewers)
        assert rtmp_pulls(cluster, "multi") == 1, cluster.ome_stats("multi")["connections"]
        assert cluster.routes("multi") == ["origin-1", puller]
        # The route counts the players of both workers (the sibling's through its mirror).
        wait_for(lambda: cluster.ome_stats("multi")["edges"][0]["viewers"] >= len(viewers), 15)
        # (The pulls end after the last viewer as on the other edges: the sibling's mirror, then the
        # puller's; not waited for here, the LL-HLS packagers' idle time would make it long.)
    finally:
        stop(*viewers, publisher)


async def whep_frame(url: str, *, end_session: bool = False) -> tuple[int, int]:
    """The size of the first video frame a WHEP session of ``url`` receives (``end_session``: then DELETE the
    session at its Location, which must answer 200)."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        tracks: asyncio.Queue = asyncio.Queue()
        pc.on("track", lambda track: tracks.put_nowait(track))
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as http:
            async with http.post(
                url, data=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
            ) as answer:
                assert answer.status == 201, await answer.text()
                sdp = await answer.text()
                location = answer.headers["Location"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        while True:
            track = await asyncio.wait_for(tracks.get(), 20)
            if track.kind == "video":
                frame = await asyncio.wait_for(track.recv(), 20)
                break
        if end_session:
            async with aiohttp.ClientSession() as http:
                async with http.delete(urljoin(url, location)) as ended:
                    assert ended.status == 200, (location, ended.status, await ended.text())
        return frame.width, frame.height
    finally:
        await pc.close()


def test_whep_plays_from_an_edge(cluster):
    publisher = publish(f"{cluster.origin.rtmp}/webcam")
    try:
        live_on_origin(cluster, "webcam", publisher)
        assert asyncio.run(whep_frame(f"{cluster.edges[1].media}/webcam?direction=whep")) == (640, 360)
    finally:
        stop(publisher)


def test_a_cdn_profile_rendition_plays_from_an_edge_at_its_height(cluster):
    profile = {"video": {"codec": "h264", "height": 240, "bitrate": 400, "gop": 25}, "audio": {"codec": "aac"}}
    assert cluster.wcs("cdn/profile/add", {"name": "-240p", "profile": profile}).status_code == 200
    publisher = publish(f"{cluster.origin.rtmp}/show")
    try:
        live_on_origin(cluster, "show", publisher)
        probe = probe_until(f"{cluster.edges[0].media}/show-240p/ts:playlist.m3u8", 120, cluster.logs)
        assert probe["video"]["height"] == 240
        probe = probe_until(f"{cluster.edges[1].rtmp}/show-240p", 60, cluster.logs)
        assert probe["video"]["height"] == 240
        # One transcode for both edges, published on the transcoder node, pulled by both edges.
        assert cluster.live_names().count("show-240p") == 1
        routes = cluster.pulled_routes("show-240p")
        assert routes[0] == "transcoder-1", routes
        # Nobody watches any more: the edges' pulls end, then the transcode (STREAMHUB_EDGE_TRANSCODE_IDLE).
        wait_for(lambda: "show-240p" not in cluster.live_names(), 90, cluster.logs)
        assert publisher.poll() is None
    finally:
        stop(publisher)


def test_without_a_transcoder_the_edge_makes_the_rendition(cluster):
    """No transcoder node alive: the rendition is published on the edge that asked for it (the
    origin gives the transcode its input once, and holds and relays nothing of the rendition)."""
    profile = {"video": {"codec": "h264", "height": 180, "bitrate": 300, "gop": 25}, "audio": {"codec": "aac"}}
    assert cluster.wcs("cdn/profile/add", {"name": "-180p", "profile": profile}).status_code == 200
    cluster.hub.kill("transcoder-1")
    publisher = publish(f"{cluster.origin.rtmp}/talk")
    try:
        wait_for(lambda: cluster.nodes()["transcoder-1"]["globalState"] == "PASSIVE", 60)
        live_on_origin(cluster, "talk", publisher)
        probe = probe_until(f"{cluster.edges[0].media}/talk-180p/ts:playlist.m3u8", 120, cluster.logs)
        assert probe["video"]["height"] == 180
        probe = probe_until(f"{cluster.edges[1].rtmp}/talk-180p", 60, cluster.logs)
        assert probe["video"]["height"] == 180
        routes = cluster.pulled_routes("talk-180p")
        assert routes == ["edge-a", "edge-b"], "held by the edge that asked, pulled by the other edge"
        assert cluster.ome_stats("talk")["connections"].get("rtmp") == 1, "the origin: the transcode's input only"
        assert cluster.routes("talk") == ["origin-1"]
        wait_for(lambda: "talk-180p" not in cluster.live_names(), 90, cluster.logs)
        assert publisher.poll() is None
    finally:
        stop(publisher)


def test_an_edge_out_of_routing_gets_no_new_routes(cluster):
    edge = cluster.edges[1]
    out = cluster.wcs("cdn/enforce_state", {"state": "GROUP_CONNECTION_ALLOWED", "nodeId": edge.node_id})
    assert out.status_code == 200
    publisher = publish(f"{cluster.origin.rtmp}/quiet")
    try:
        live_on_origin(cluster, "quiet", publisher)
        assert requests.get(f"{edge.media}/quiet/llhls.m3u8", timeout=10).status_code == 404
        other = cluster.edges[0]
        assert set(probe_until(f"{other.media}/quiet/llhls.m3u8", 60)) == {"video", "audio"}
        routes = cluster.routes("quiet")
        assert edge.node_id not in routes
    finally:
        cluster.wcs("cdn/enforce_state", {"state": "NEW_STREAMS_ALLOWED", "nodeId": edge.node_id})
        stop(publisher)


def test_killing_the_origin_ends_the_stream_on_the_edges(cluster):
    """Last: the origin does not come back."""
    publisher = publish(f"{cluster.origin.rtmp}/final")
    viewers: list[subprocess.Popen] = []
    try:
        live_on_origin(cluster, "final", publisher)
        viewers = [player(f"{edge.rtmp}/final") for edge in cluster.edges]
        wait_for(lambda: rtmp_pulls(cluster, "final") == 2, 30, cluster.logs)
        cluster.hub.kill("origin-1")
        for viewer in viewers:
            viewer.wait(30)  # the edge ends the stream: its players are told and hung up
        for edge in cluster.edges:
            assert requests.get(f"{edge.media}/final/llhls.m3u8", timeout=10).status_code == 404
    finally:
        stop(*viewers, publisher)
