"""`make run`'s supervisor (scripts/run_platform.py), run as it is on free ports with a database of its
own: every kind of child killed with SIGKILL comes back, the API answers while the engine restarts, a
running record resumes after its worker's death, and SIGTERM stops everything (a crash loop's backoff:
test_run_platform_backoff.py, a module of its own so that another test process runs it alongside).
Two API processes share the API port: REST calls and WebSocket events work on both, and the API
goes on answering while one of them is killed. nginx fronts the media port (as `make run` starts it):
HLS, LL-HLS (blocking reloads, preload-hinted parts) and WHEP play through it, and viewers answered
from its cache count with their own addresses.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import aiohttp
import pytest
import requests

from tests.conftest import OME_AUTH
from tests.integration.conftest import LiveStreamHub, _answers, free_port, wait_for
from tests.integration.test_cdn_edges import whep_frame
from tests.integration.test_engine import codecs, ffprobe, publish, wait_live
from tests.integration.test_recording import record_state
from tests.integration.test_wcs import wcs

# Longer than the suite's 300 s: the module's platform (nine processes, two API servers) starts in its
# first test's setup, and takes minutes to import Django on a loaded machine.
pytestmark = [pytest.mark.services, pytest.mark.timeout(900)]
APP = "/v1/vhosts/default/apps/app"
STARTED = re.compile(r"\[run_platform\] started (\S+) \(pid (\d+)\)")


class SupervisedStreamHub(LiveStreamHub):
    """The platform as `make run` starts it: one supervisor process and the children it starts."""

    def __init__(self, folder, redis_url) -> None:
        super().__init__(folder, redis_url)
        self.env.update(
            {
                "STREAMHUB_API_HOST": "127.0.0.1",
                "STREAMHUB_API_PORT": str(self.port),
                "STREAMHUB_RTMP_HOST": "127.0.0.1",
                "STREAMHUB_RTMP_PORT": str(self.rtmp_port),
                "STREAMHUB_MEDIA_HTTP_HOST": "127.0.0.1",
                "STREAMHUB_MEDIA_HTTP_PORT": str(self.media_port),
                "STREAMHUB_API_PROCESSES": "2",
                "STREAMHUB_MEDIA_HTTP_UPSTREAM_PORT": str(free_port()),  # the engine's, behind nginx
            }
        )

    def start_supervisor(self, wait_for_engine: bool = True) -> None:
        self._spawn("supervisor", [sys.executable, "scripts/run_platform.py"])
        # Generous: every child (two API processes among them) imports Django at once on a busy machine.
        wait_for(lambda: _answers(f"{self.url}/admin/login/"), 300, lambda: self.log("supervisor")[-3000:])
        if wait_for_engine:
            wait_for(lambda: engine_answers(self), 120, lambda: self.log("supervisor")[-3000:])
        for name in ("media-worker", "transcode-worker", "control-worker", "beat"):
            wait_for(lambda name=name: self.ready_count(name) >= 1, 90, lambda: self.log("supervisor")[-3000:])

    @property
    def supervisor(self):
        return self.processes["supervisor"]

    def pids(self, name: str) -> list[int]:
        """Every pid the supervisor started ``name`` with, in order."""
        return [int(pid) for child, pid in STARTED.findall(self.log("supervisor")) if child == name]

    def ready_count(self, name: str) -> int:
        """How many times a Celery child said it is ready (a worker) or started (beat)."""
        log = self.log("supervisor")
        if name == "beat":
            return log.count("beat: Starting...")
        return log.count(f"{name.removesuffix('-worker')}@{socket.gethostname()} ready.")

    def kill_child(self, name: str) -> int:
        """kill -9 the running ``name`` (only that process, as an operator's kill would); its pid."""
        pid = self.pids(name)[-1]
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 30) -> int:
        wait_for(lambda: f"{name} killed by SIGKILL: restarting it in" in self.log("supervisor"), 10)
        return wait_for(lambda: self.pids(name)[-1] != old_pid and self.pids(name)[-1], timeout)


@pytest.fixture(scope="module")
def supervised(tmp_path_factory, redis_url):
    platform = SupervisedStreamHub(tmp_path_factory.mktemp("supervised"), redis_url)
    try:
        platform.start_supervisor()
    except BaseException:
        platform.stop()  # a supervisor left running would restart its children for ever
        raise
    yield platform
    platform.stop()


def engine_answers(platform) -> bool:
    """The engine answers on the media port (its WebRTC page, through nginx: not nginx's 502 while it starts)."""
    try:
        return requests.get(f"{platform.media}/", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def api_answers(platform) -> bool:
    try:
        return platform.api("GET", "/v1/vhosts", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def server_pids(port: int) -> list[int]:
    """The pid of the process on the server side of each established connection to ``port``."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    return [int(pid) for pid in re.findall(r"pid=(\d+)", out)]


class EventSockets:
    """/ws/events/ WebSockets (each its own connection), opened one by one until both API processes
    serve some (the kernel picks the process of each connection), in a thread recording what each receives."""

    def __init__(self, platform, api_pids: set[int], most: int = 24) -> None:
        self.url = platform.url.replace("http", "ws") + "/ws/events/"
        self.port, self.api_pids, self.most = platform.port, api_pids, most
        self.events: list[list[dict]] = []
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()))
        self.thread.start()
        assert self.connected.wait(180), self.events
        assert set(server_pids(self.port)) == api_pids, (server_pids(self.port), api_pids)

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session:
            listeners = []
            try:
                while len(self.events) < self.most and set(server_pids(self.port)) != self.api_pids:
                    socket_ = await session.ws_connect(self.url, headers={"Authorization": OME_AUTH})
                    self.events.append([])
                    listeners.append(asyncio.create_task(self._listen(socket_, self.events[-1])))
            finally:
                self.connected.set()
            await asyncio.gather(*listeners)

    async def _listen(self, socket_, events: list[dict]) -> None:
        async with socket_:
            while not self.stop.is_set():
                try:
                    message = await socket_.receive(timeout=0.5)
                except TimeoutError:
                    continue
                if message.type == aiohttp.WSMsgType.TEXT:
                    events.append(json.loads(message.data))
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    events.append({"event": "socket closed"})
                    return

    def names(self, index: int, event: str) -> list[str]:
        return [item["stream"]["name"] for item in self.events[index] if item.get("event") == event]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_two_api_processes_serve_rest_and_websocket_events_on_one_port_and_survive_a_kill(supervised):
    api_pids = {supervised.pids("api-1")[-1], supervised.pids("api-2")[-1]}
    # WebSockets on both processes (the constructor checks), and keep-alive REST connections beside them.
    sockets = EventSockets(supervised, api_pids)
    count = len(sockets.events)
    sessions = [requests.Session() for _ in range(8)]
    try:
        for session in sessions:
            response = session.get(f"{supervised.url}/v1/vhosts", headers={"Authorization": OME_AUTH}, timeout=10)
            assert response.status_code == 200 and response.json()["response"] == ["default"]
        serving = server_pids(supervised.port)
        assert len(serving) == count + 8 and set(serving) == api_pids, (serving, api_pids)  # nothing else serves

        # An engine event reaches the WebSockets of both processes (Channels groups over Redis).
        publisher = publish(supervised, "spread", seconds=60)
        try:
            wait_live(supervised, "spread", publisher)
            wait_for(
                lambda: all("spread" in sockets.names(i, "started") for i in range(count)), 30, lambda: sockets.events
            )

            # kill -9 one API process: the other answers every new connection meanwhile.
            killed = supervised.kill_child("api-2")
            time.sleep(0.5)
            answers = [
                requests.post(f"{supervised.url}/rest-api/stream/find_all", json={}, timeout=10).status_code
                for _ in range(40)
            ]
            assert answers == [200] * 40, answers
            wait_for(lambda: any({"event": "socket closed"} in events for events in sockets.events), 10)
            survivors = [i for i, events in enumerate(sockets.events) if {"event": "socket closed"} not in events]
            assert 0 < len(survivors) < count, (
                sockets.events
            )  # the killed process's sockets closed, the others' did not
        finally:
            publisher.kill()
            publisher.wait()
        # The surviving WebSockets still hear the stream end.
        wait_for(lambda: all("spread" in sockets.names(i, "ended") for i in survivors), 30, lambda: sockets.events)
    finally:
        sockets.close()
        for session in sessions:
            session.close()
    supervised.wait_restarted("api-2", killed)
    # The restarted process serves on the port again.
    wait_for(lambda: supervised.pids("api-2")[-1] in server_pids_after_requests(supervised), 300)


def server_pids_after_requests(platform) -> set[int]:
    """The API processes that answer 8 new keep-alive connections (kept open while looked at)."""
    sessions = [requests.Session() for _ in range(8)]
    try:
        for session in sessions:
            try:
                session.get(f"{platform.url}/v1/vhosts", headers={"Authorization": OME_AUTH}, timeout=10)
            except requests.RequestException:
                pass
        return set(server_pids(platform.port))
    finally:
        for session in sessions:
            session.close()


def test_a_killed_api_server_is_restarted(supervised):
    old = supervised.kill_child("api-1")
    supervised.wait_restarted("api-1", old)
    wait_for(lambda: api_answers(supervised), 30, lambda: supervised.log("supervisor")[-3000:])
    assert supervised.supervisor.poll() is None


@pytest.mark.parametrize("name", ["media-worker", "transcode-worker", "control-worker", "beat"])
def test_a_killed_celery_child_is_restarted(supervised, name):
    ready = supervised.ready_count(name)
    old = supervised.kill_child(name)
    new = supervised.wait_restarted(name, old)
    wait_for(lambda: supervised.ready_count(name) > ready, 60, lambda: supervised.log("supervisor")[-3000:])
    # Only the one process was restarted, and the API never stopped answering.
    assert supervised.pids(name)[-1] == new
    assert api_answers(supervised)


def test_the_api_answers_while_a_killed_engine_restarts(supervised):
    old = supervised.kill_child("engine")
    answers = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (supervised.pids("engine")[-1] != old and engine_answers(supervised)):
        answers.append(api_answers(supervised))
        time.sleep(0.2)
    assert supervised.pids("engine")[-1] != old, supervised.log("supervisor")[-3000:]
    assert len(answers) >= 3 and all(answers), answers
    assert "engine killed by SIGKILL: restarting it in 1 s" in supervised.log("supervisor")

    # The new engine takes publishes, and the API sees them.
    publisher = publish(supervised, "after-restart", seconds=20)
    try:
        wait_live(supervised, "after-restart", publisher)
    finally:
        publisher.kill()


def test_a_record_resumes_after_its_media_worker_is_killed(supervised):
    body = {"id": "survivor", "stream": {"name": "survivor"}, "interval": 2000, "filePath": "survivor/${Sequence}.mp4"}
    publisher = publish(supervised, "survivor", seconds=90)
    try:
        wait_live(supervised, "survivor", publisher)
        assert supervised.api("POST", f"{APP}:startRecord", json=body).status_code == 200
        wait_for(lambda: record_state(supervised, "survivor")["sequence"] >= 1, 20)

        old = supervised.kill_child("media-worker")
        before = record_state(supervised, "survivor")
        supervised.wait_restarted("media-worker", old)
        # Nobody ran the media worker again by hand: the supervisor did, and the lease (5 s here)
        # hands the record to it, which continues with its next file.
        wait_for(
            lambda: (r := record_state(supervised, "survivor"))["state"] == "recording"
            and r["sequence"] > before["sequence"] + 1,
            120,  # a restarted Celery worker takes tens of seconds to boot on a loaded 2-core machine
            lambda: supervised.log("supervisor")[-3000:],
        )
        assert supervised.api("POST", f"{APP}:stopRecord", json={"id": "survivor"}).status_code == 200
        wait_for(lambda: record_state(supervised, "survivor")["state"] == "stopped", 20)
    finally:
        publisher.kill()
    files = sorted((supervised.folder / "media" / "survivor").glob("[0-9]*.mp4"), key=lambda path: int(path.stem))
    assert max(int(path.stem) for path in files) > before["sequence"] + 1


HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"')
NEXT_PART = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_\d+_(\d+)_(\d+)_')


def probe_tracks(url: str) -> dict:
    """ffprobe ``url`` until it shows video and audio (a probe on a loaded machine may end before a track)."""
    probes: list[dict] = []

    def attempt() -> dict | None:
        probes.append(codecs(ffprobe(url)))
        return probes[-1] if {"video", "audio"} <= set(probes[-1]) else None

    return wait_for(attempt, 60, lambda: str(probes[-2:]))


def get_from(address: str, url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``url`` from the local ``address`` (127.0.0.x: a viewer that is not nginx's loopback address)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20, source_address=(address, 0))
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()


def test_nginx_fronts_the_media_port_hls_llhls_whep_and_viewers_answered_from_its_cache(supervised):
    log = supervised.log("supervisor")
    assert "nginx fronts the media port" in log and supervised.pids("media-front"), log[-3000:]
    base = f"{supervised.media}/app/fronted"
    publisher = publish(supervised, "fronted", seconds=120)
    try:
        wait_live(supervised, "fronted", publisher)
        for playlist in ("ts:playlist.m3u8", "llhls.m3u8"):
            streams = probe_tracks(f"{base}/{playlist}")
            assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"

        # Viewers answered from nginx's cache count, with their own addresses (never nginx's): one fetch
        # fills the cache, three viewers on other loopback addresses get the segment from it.
        playlist = requests.get(f"{base}/ts:playlist.m3u8", timeout=10).text
        segment = f"{base}/{[line for line in playlist.splitlines() if line.endswith('.ts')][-1]}"
        assert requests.get(segment, timeout=10).status_code == 200
        for number in (2, 3, 4):
            status, headers, body = get_from(f"127.0.0.{number}", segment, **{"User-Agent": f"cached-viewer/{number}"})
            assert (status, headers["X-Cache-Status"]) == (200, "HIT") and body[0] == 0x47  # (TS sync byte)
        # A viewer's claim to be someone else is not believed (nginx sets the headers the engine trusts).
        spoofed = {"User-Agent": "spoofing-viewer/1", "X-Real-IP": "10.9.9.9", "X-StreamHub-Front": "guess"}
        assert get_from("127.0.0.5", f"{base}/ts:playlist.m3u8", **spoofed)[0] == 200

        def viewers() -> dict[str, str]:
            answer = wcs(supervised, "hls/subscribers", {"hlsId": "fronted"})
            return {v["userAgent"]: v["ip"] for v in answer.json()} if answer.status_code == 200 else {}

        expected = {f"cached-viewer/{n}": f"127.0.0.{n}" for n in (2, 3, 4)} | {"spoofing-viewer/1": "127.0.0.5"}
        wait_for(lambda: expected.items() <= viewers().items(), 20, lambda: str(viewers()))
        # A request with credentials in its query never comes from (nor goes into) the cache.
        credentials = requests.get(f"{segment}?session=someone-elses", timeout=10)
        assert credentials.headers["X-Cache-Status"] == "BYPASS"

        # LL-HLS: a blocking reload for the next part and the preload-hinted part itself, at the same time, through
        # nginx; both answered once the part is complete (a part is 0.2 s: well within the timeout).
        master = requests.get(f"{base}/llhls.m3u8", timeout=10).text
        chunklist = next(line for line in master.splitlines() if line.startswith("chunklist_"))
        playlist = requests.get(f"{base}/{chunklist}", timeout=10).text
        hinted = HINT.search(playlist)[1]
        msn, part = NEXT_PART.search(playlist).groups()
        with ThreadPoolExecutor(2) as pool:
            reload = pool.submit(requests.get, f"{base}/{chunklist}?_HLS_msn={msn}&_HLS_part={part}", timeout=10)
            hint = pool.submit(requests.get, f"{base}/{hinted}", timeout=10)
            reload, hint = reload.result(), hint.result()
        assert reload.status_code == 200 and f'URI="{hinted}"' in reload.text.split("#EXT-X-PRELOAD-HINT")[0]
        assert hint.status_code == 200 and hint.content[4:8] in (b"moof", b"emsg"), hint.status_code
        again = requests.get(f"{base}/{chunklist}?_HLS_msn={msn}&_HLS_part={part}", timeout=10)
        assert again.status_code == 200 and again.headers["X-Cache-Status"] == "HIT"

        # WHEP through nginx (POST offer, 201 with the session's Location), frames; then the session's DELETE.
        assert asyncio.run(whep_frame(f"{base}?direction=whep", end_session=True)) == (640, 360)
        # CORS preflight and errors keep their answers.
        preflight = requests.options(f"{base}?direction=whep", timeout=10)
        assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == "*"
        assert requests.get(f"{supervised.media}/app/nothing/ts:playlist.m3u8", timeout=10).status_code == 404
        assert requests.get(f"{supervised.media}/app/.hidden/llhls.m3u8", timeout=10).status_code == 400
    finally:
        publisher.kill()
        publisher.wait()


def test_sigterm_stops_every_process_of_the_platform(supervised):
    """Last in this module: it ends the platform."""
    groups = {
        name: supervised.pids(name)[-1]
        for name in ("api-1", "api-2", "engine", "media-worker", "control-worker", "beat")
    }
    os.kill(supervised.supervisor.pid, signal.SIGTERM)
    assert supervised.supervisor.wait(timeout=40) == 0
    for pid in groups.values():
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # nothing of that child's process group is left (a prefork pool too)
    assert "[run_platform] stopped" in supervised.log("supervisor")
    assert not _answers(f"{supervised.url}/admin/login/")
