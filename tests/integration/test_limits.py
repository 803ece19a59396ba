"""Hostile clients against the media ports of a running platform (issue #23 items 3, 4, 9), each while
an ffmpeg-published stream keeps playing: thousands of idle HTTP connections, a process out of file
descriptors, RTMP publishers that leave huge messages incomplete, bad stream names, refused WHIP offers.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from media_engine.rtmp import amf0
from media_engine.rtmp.chunks import ChunkWriter, MessageType
from tests.integration.conftest import ROOT, LiveStreamHub, wait_for
from tests.integration.test_engine import codecs, ffprobe, publish, wait_live

pytestmark = pytest.mark.services

MiB = 1024 * 1024
HTTP_CAP = 1500
HEADER_TIMEOUT = 8
NODE_PENDING = 64 * MiB
LIMITS_ENV = {
    "STREAMHUB_MEDIA_HTTP_MAX_CONNECTIONS": str(HTTP_CAP),
    "STREAMHUB_MEDIA_HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
    "STREAMHUB_MEDIA_HTTP_KEEPALIVE_TIMEOUT": "4",
    "STREAMHUB_RTMP_NODE_PENDING_BYTES": str(NODE_PENDING),
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory, redis_url):
    """API server and engine node with the limits lowered to what a test can reach."""
    server = LiveStreamHub(tmp_path_factory.mktemp("limits"), redis_url)
    server.env.update(LIMITS_ENV)
    server.start(engine=True)
    response = server.api("PATCH", "/v1/vhosts/default/apps/app", json={"publishers": {"hls": {"segmentDuration": 1}}})
    assert response.status_code == 200
    time.sleep(2.5)  # the engine's application cache
    yield server
    server.stop()


@pytest.fixture
def good_stream(platform):
    """A name published by ffmpeg for the test, live and packaged as HLS."""
    name = f"good{time.monotonic_ns() % 100000}"
    publisher = publish(platform, name, seconds=60)
    wait_live(platform, name, publisher)
    playlist = f"{platform.media}/app/{name}/ts:playlist.m3u8"
    wait_for(lambda: requests.get(playlist, timeout=5).status_code == 200, 20)
    yield name, publisher
    publisher.kill()
    publisher.wait()


class HlsPlayer(threading.Thread):
    """A player on one keep-alive connection: the playlist and its newest segment every 0.5 s."""

    def __init__(self, playlist: str) -> None:
        super().__init__(daemon=True)
        self.playlist = playlist
        self.http = requests.Session()
        self.stop = threading.Event()
        self.segments: set[str] = set()
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                playlist = self.http.get(self.playlist, timeout=5)
                playlist.raise_for_status()
                segment = [line for line in playlist.text.splitlines() if line and not line.startswith("#")][-1]
                data = self.http.get(self.playlist.rsplit("/", 1)[0] + "/" + segment, timeout=5)
                data.raise_for_status()
                assert data.content[:1] == b"\x47"  # an MPEG-TS packet
                self.segments.add(segment)
            except Exception as error:  # noqa: BLE001 - every failure is the finding
                self.failures.append(repr(error))
            self.stop.wait(0.5)


def engine_peak_rss(platform) -> int:
    """The engine process's peak resident memory (VmHWM), bytes."""
    status = open(f"/proc/{platform.processes['engine'].pid}/status").read()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024


def closed_by_server(sock: socket.socket) -> bool:
    """True if the server has closed (or reset) ``sock``; reads and drops whatever it sent."""
    sock.setblocking(False)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


# -- item 3: the media HTTP port ---------------------------------------------------------------------


def test_thousands_of_idle_connections_get_503_beyond_the_cap_and_are_closed_while_hls_plays(platform, good_stream):
    name, publisher = good_stream
    player = HlsPlayer(f"{platform.media}/app/{name}/ts:playlist.m3u8")
    player.start()
    wait_for(lambda: player.segments, 10)
    idle: list[socket.socket] = []
    try:
        for _ in range(HTTP_CAP + 300):
            idle.append(socket.create_connection(("127.0.0.1", platform.media_port), timeout=5))
        answers: dict[socket.socket, bytes] = {}
        for sock in idle:
            sock.setblocking(False)

        def collect() -> bool:
            # The engine accepts from its backlog at its own pace (slower on a loaded machine): poll.
            for sock in idle:
                if sock not in answers:
                    try:
                        answers[sock] = sock.recv(4096)
                    except BlockingIOError:
                        pass  # nothing sent: the server waits for a request
            return len(answers) >= 290

        wait_for(collect, HEADER_TIMEOUT - 2, lambda: f"{len(answers)} answered")
        refused = [a for a in answers.values() if a.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")]
        assert len(refused) >= 290, f"{len(refused)} refused"  # the player holds one of the cap's connections
        assert all(a.endswith(b"too many connections\n") for a in refused)
        assert len(answers) == len(refused)  # the others are waited for, silently

        # Every idle connection is closed once the header timeout is over.
        wait_for(lambda: all(closed_by_server(sock) for sock in idle), HEADER_TIMEOUT + 10)
        # A slow-header client is closed as well, though it keeps sending.
        slow = socket.create_connection(("127.0.0.1", platform.media_port), timeout=5)
        started = time.monotonic()
        for byte in b"GET /app/x/ts:playlist.m3u8 HTTP/1.1\r\nHost: x\r\n":
            try:
                slow.send(bytes([byte]))
            except OSError:
                break
            if closed_by_server(slow):
                break
            time.sleep(0.2)
        assert closed_by_server(slow) and time.monotonic() - started < HEADER_TIMEOUT + 3
        # And a new client is served again: ffprobe reads the stream's HLS.
        assert set(codecs(ffprobe(f"{platform.media}/app/{name}/ts:playlist.m3u8"))) == {"video", "audio"}
    finally:
        player.stop.set()
        player.join(10)
        for sock in idle:
            sock.close()
    # The player was served throughout the flood, on its keep-alive connection, and kept getting new segments.
    assert player.failures == []
    assert len(player.segments) >= 5
    assert publisher.poll() is None
    assert platform.log("engine").count("connection(s) refused with 503") <= 3  # a line per 10 s, not per client


def test_out_of_file_descriptors_the_log_stays_small_and_the_engine_serves_again(tmp_path, redis_url):
    """An engine with 400 descriptors and its RTMP connection cap turned off, flooded on its RTMP port:
    accept() fails with EMFILE on both ports; the log gets a few lines, not a traceback per attempt,
    and once the flood is gone the engine takes publishers and viewers again."""
    platform = LiveStreamHub(tmp_path, redis_url)
    platform.env["STREAMHUB_RTMP_MAX_CONNECTIONS"] = "0"
    platform.start()
    try:
        platform._spawn("engine", ["prlimit", "--nofile=400:400", sys.executable, "manage.py", "runengine",
                                   "--rtmp-host", "127.0.0.1", "--rtmp-port", str(platform.rtmp_port),
                                   "--http-host", "127.0.0.1", "--http-port", str(platform.media_port)])  # fmt: skip
        wait_for(lambda: _answers(f"{platform.media}/app/x/ts:playlist.m3u8"), 30, lambda: platform.log("engine"))
        flood = []
        for _ in range(500):
            try:
                flood.append(socket.create_connection(("127.0.0.1", platform.rtmp_port), timeout=2))
            except OSError:
                break
        time.sleep(4)
        for sock in flood:
            sock.close()
        log = platform.log("engine")
        assert "out of system resource" in log  # the flood did exhaust the descriptors
        # Hundreds of failed accepts a second, and every heartbeat failing: each kind logged once.
        assert log.count("out of system resource") <= 2, log[-3000:]
        assert log.count("Traceback (most recent call last)") <= 10, log[-3000:]
        assert len(log) < 100_000
        # Descriptors are free again: the engine answers HTTP and takes a publisher whose HLS plays.
        wait_for(lambda: _answers(f"{platform.media}/app/x/ts:playlist.m3u8"), 10)
        publisher = publish(platform, "after", seconds=30)
        try:
            wait_live(platform, "after", publisher)
            assert set(codecs(ffprobe(f"{platform.media}/app/after/ts:playlist.m3u8"))) == {"video", "audio"}
        finally:
            publisher.kill()
            publisher.wait()
        assert platform.processes["engine"].poll() is None
    finally:
        platform.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 404
    except requests.RequestException:
        return False


# -- item 4: RTMP messages left incomplete -------------------------------------------------------------


def rtmp_publisher_socket(platform, name: str) -> tuple[socket.socket, ChunkWriter]:
    """A raw RTMP connection through handshake, connect, createStream and publish (chunk size 64 KiB)."""
    sock = socket.create_connection(("127.0.0.1", platform.rtmp_port), timeout=10)
    sock.sendall(b"\x03" + bytes(1536))
    s0s1s2 = b""
    while len(s0s1s2) < 3073:
        s0s1s2 += sock.recv(3073 - len(s0s1s2))
    sock.sendall(s0s1s2[1:1537])  # C2 echoes S1
    writer = ChunkWriter()
    connect = {"app": "app", "tcUrl": f"{platform.rtmp}/app", "type": "nonprivate"}
    sock.sendall(writer.write(3, MessageType.COMMAND_AMF0, 0, 0, amf0.encode("connect", 1.0, connect)))
    sock.sendall(writer.write(3, MessageType.COMMAND_AMF0, 0, 0, amf0.encode("createStream", 2.0, None)))
    sock.sendall(writer.write(8, MessageType.COMMAND_AMF0, 1, 0, amf0.encode("publish", 3.0, None, name, "live")))
    sock.sendall(writer.set_chunk_size(64 * 1024))
    return sock, writer


def test_publishers_leaving_big_messages_incomplete_keep_the_engine_bounded_while_a_stream_plays(platform, good_stream):
    name, publisher = good_stream
    before = engine_peak_rss(platform)
    attackers = 24  # each leaves two 8 MiB video messages (the largest accepted) one chunk short
    message = bytes(8 * MiB)
    sockets = []
    for index in range(attackers):
        sock, writer = rtmp_publisher_socket(platform, f"attack{index}")
        sockets.append(sock)
        try:
            for csid in (6, 7):
                sock.sendall(writer.write(csid, MessageType.VIDEO, 1, 0, message)[: -(64 * 1024 + 1)])
        except OSError:
            pass  # dropped by the engine while sending: what the node budget does
    time.sleep(1)
    peak = engine_peak_rss(platform) - before
    open_attackers = [sock for sock in sockets if not closed_by_server(sock)]
    # Without the node's cap the engine would hold attackers x 16 MiB (384 MiB); it held about its cap.
    assert peak < NODE_PENDING + 64 * MiB, f"peak RSS grew by {peak / MiB:.0f} MiB"
    assert len(open_attackers) <= NODE_PENDING // (16 * MiB) + 1
    assert "the node holds too many bytes in incomplete messages" in platform.log("engine")

    # A message declared bigger than any real one is refused on its header: closed before its payload.
    sock, writer = rtmp_publisher_socket(platform, "oversized")
    sock.sendall(writer.write(6, MessageType.VIDEO, 1, 0, bytes(12 * MiB))[:12])
    wait_for(lambda: closed_by_server(sock), 5)

    for sock in sockets:
        sock.close()
    assert publisher.poll() is None
    assert set(codecs(ffprobe(f"{platform.media}/app/{name}/ts:playlist.m3u8"))) == {"video", "audio"}


def test_rtmp_connections_beyond_the_cap_are_hung_up_on_while_a_stream_plays(tmp_path, redis_url):
    platform = LiveStreamHub(tmp_path, redis_url)
    platform.env["STREAMHUB_RTMP_MAX_CONNECTIONS"] = "50"
    platform.start(engine=True)
    try:
        publisher = publish(platform, "capped", seconds=60)
        try:
            wait_live(platform, "capped", publisher)
            flood = [socket.create_connection(("127.0.0.1", platform.rtmp_port), timeout=5) for _ in range(100)]
            time.sleep(1)
            hung_up = [sock for sock in flood if closed_by_server(sock)]
            assert len(hung_up) == 100 - 49  # the publisher holds one of the 50
            assert "RTMP: 1 connection(s) refused, 50 open (the cap)" in platform.log("engine")
            for sock in flood:
                sock.close()
            # Room again: a player gets the stream over RTMP, a viewer over HLS.
            assert codecs(ffprobe(f"{platform.rtmp}/app/capped"))["video"]["codec_name"] == "h264"
            assert set(codecs(ffprobe(f"{platform.media}/app/capped/ts:playlist.m3u8"))) == {"video", "audio"}
            assert publisher.poll() is None
        finally:
            publisher.kill()
            publisher.wait()
    finally:
        platform.stop()


# -- item 9: names and refused offers ------------------------------------------------------------------


def stream_rows(platform, name_filter: str) -> int:
    result = platform.manage(
        "shell", "-c", f"from apps.streams.models import Stream; print(Stream.objects.filter({name_filter}).count())"
    )
    return int(result.stdout.strip().splitlines()[-1])


def test_ffmpeg_publishing_bad_names_is_refused_while_a_good_stream_plays(platform, good_stream):
    good, publisher = good_stream
    bad_names = ["..", "../../x", "a/b", "x" * 5000]
    for name in bad_names:
        # ffmpeg's -rtmp_playpath sends the name exactly as given in its publish command.
        refused = subprocess.run(
            ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "5",
             "-c:v", "libx264", "-preset", "ultrafast", "-f", "flv", "-rtmp_app", "app", "-rtmp_playpath", name,
             f"{platform.rtmp}/app/ignored"],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert refused.returncode != 0, name
    live = platform.api("GET", "/v1/vhosts/default/apps/app/streams").json()["response"]
    assert good in live and not set(bad_names) & set(live) and "ignored" not in live
    assert stream_rows(platform, f"name__in={bad_names!r}") == 0
    assert publisher.poll() is None
    assert set(codecs(ffprobe(f"{platform.media}/app/{good}/ts:playlist.m3u8"))) == {"video", "audio"}


def test_a_refused_whip_offer_leaves_no_stream_row(platform):
    unusable = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
        "c=IN IP4 0.0.0.0\r\na=rtpmap:96 AV1/90000\r\na=sendonly\r\n"
    )
    headers = {"Content-Type": "application/sdp"}
    response = requests.post(f"{platform.media}/app/whipcam?direction=whip", data=unusable, headers=headers, timeout=10)
    assert response.status_code == 400
    response = requests.post(f"{platform.media}/app/%2E%2E?direction=whip", data=unusable, headers=headers, timeout=10)
    assert response.status_code == 400 and "invalid stream name" in response.text
    time.sleep(1.5)  # what the engine reports reaches the database within a heartbeat
    assert stream_rows(platform, "name__in=['whipcam', '..']") == 0


def test_an_hls_dump_into_the_media_root_itself_is_refused(platform, good_stream):
    name, _ = good_stream
    body = {"outputStreamName": name, "id": "root-dump", "outputPath": "."}
    response = platform.api("POST", f"/v1/vhosts/default/apps/app/streams/{name}:startHlsDump", json=body)
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "message": "[HTTP] outputPath: .: the media root itself; a dump needs a folder of its own (400)",
    }
    assert stream_rows(platform, "name='x'") == 0 and _dumps(platform) == 0


def _dumps(platform) -> int:
    result = platform.manage("shell", "-c", "from apps.hls_dump.models import HlsDump; print(HlsDump.objects.count())")
    return int(result.stdout.strip().splitlines()[-1])
