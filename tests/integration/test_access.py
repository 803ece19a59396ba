"""Access control with real clients: ffmpeg publishes signed, unsigned, expired and foreign-address
URLs (OME SignedPolicy); ffprobe plays signed HLS; a control server on loopback allows, denies,
rewrites and times out (OME AdmissionWebhooks); WCS stream ACL keys refuse RTMP and HLS plays
without ``aclAuth``. No secret shows up in the engine's log."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from media_engine.admission import make_policy, sign_url
from tests.integration.conftest import LiveStreamHub, wait_for
from tests.integration.test_engine import codecs, ffprobe

pytestmark = pytest.mark.services

SECRET = "policy-secret-1"
HOOK_SECRET = "hook-secret-1"
ACL_KEY = "acl-key-1"
LLHLS = {"hls": {"segmentDuration": 1}, "llhls": {"chunkDuration": 0.5, "segmentDuration": 1}}


class ControlServer(ThreadingHTTPServer):
    """An admission webhook on loopback: the stream name in the URL says what to answer."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ControlHandler)
        self.requests: list[dict] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/admission"


class ControlHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body["signature"] = self.headers.get("X-OME-Signature", "")
        self.server.requests.append(body)
        url = body["request"]["url"]
        if "/slow" in url:
            time.sleep(3)
            answer = {"allowed": True}
        elif "/denied" in url:
            answer = {"allowed": False, "reason": "not on the guest list"}
        elif "/rename" in url:
            answer = {"allowed": True, "new_url": url.split("/rename")[0] + "/renamed"}
        else:
            answer = {"allowed": True}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def control_server():
    server = ControlServer()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def platform(tmp_path_factory, redis_url, control_server):
    server = LiveStreamHub(tmp_path_factory.mktemp("access"), redis_url)
    server.start(engine=True)
    apps = [{"name": "signed", "type": "live"}, {"name": "hooked", "type": "live"}]
    assert server.api("POST", "/v1/vhosts/default/apps", json=apps).status_code == 200
    signed = {"secretKey": SECRET, "enables": {"providers": "rtmp", "publishers": "hls,llhls"}}
    hooked = {
        "controlServerUrl": control_server.url,
        "secretKey": HOOK_SECRET,
        "timeout": 1000,
        "enables": {"providers": "rtmp", "publishers": "hls"},
    }
    server.manage(
        "shell",
        "-c",
        "from apps.hosting.models import Application as A\n"
        f"A.objects.filter(name='signed').update(signed_policy={signed!r}, publishers={LLHLS!r})\n"
        f"A.objects.filter(name='hooked').update(admission_webhooks={hooked!r})\n"
        "A.objects.filter(name='app').update(publishers={'hls': {'segmentDuration': 1}})\n",
    )
    yield server
    server.stop()
    engine_log = server.log("engine")
    for secret in (SECRET, HOOK_SECRET, ACL_KEY):
        assert secret not in engine_log


def publish(platform, path: str, seconds: float = 30) -> subprocess.Popen:
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=25",
         "-f", "lavfi", "-i", "sine=sample_rate=48000", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-t", str(seconds), "-f", "flv", f"{platform.rtmp}/{path}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def live(platform, app: str) -> list[str]:
    return platform.api("GET", f"/v1/vhosts/default/apps/{app}/streams").json().get("response") or []


def refused(publisher: subprocess.Popen) -> str:
    """ffmpeg's error output once the engine refused it (it must end by itself, unsuccessfully)."""
    try:
        publisher.wait(timeout=30)
    finally:
        publisher.kill()
    assert publisher.returncode != 0
    return publisher.stderr.read().decode(errors="replace")


def signed_url(url: str, expires_in: float = 60, **policy) -> str:
    return sign_url(url, SECRET, make_policy(int((time.time() + expires_in) * 1000), **policy))


def probe_fails(url: str) -> bool:
    result = subprocess.run(["ffprobe", "-v", "error", "-rw_timeout", "10000000", url], capture_output=True, timeout=60)
    return result.returncode != 0


# --- signed policy -----------------------------------------------------------------------------


def test_unsigned_expired_and_foreign_address_publishes_are_refused(platform):
    base = f"{platform.rtmp}/signed/cam"
    attempts = [
        "signed/cam",
        signed_url(base, expires_in=-5)[len(platform.rtmp) + 1 :],
        signed_url(base, allow_ip="10.1.0.0/16")[len(platform.rtmp) + 1 :],
        sign_url(base, "wrong-secret", make_policy(int((time.time() + 60) * 1000)))[len(platform.rtmp) + 1 :],
    ]
    for path in attempts:
        refused(publish(platform, path))
    assert "cam" not in live(platform, "signed")
    log = platform.log("engine")
    assert "a signed URL is required" in log and "the URL has expired" in log
    assert "the client address is not allowed" in log and "the signature does not match" in log


def test_a_signed_publish_plays_over_signed_hls(platform):
    url = signed_url(f"{platform.rtmp}/signed/cam", allow_ip="127.0.0.0/8")
    publisher = publish(platform, url[len(platform.rtmp) + 1 :])
    try:
        wait_for(lambda: "cam" in live(platform, "signed"), 20)
        playlist = f"{platform.media}/signed/cam/ts:playlist.m3u8"
        assert requests.get(playlist, timeout=10).status_code == 403
        signed_playlist = signed_url(playlist)
        wait_for(lambda: requests.get(signed_playlist, timeout=15).status_code == 200, 30)
        answer = requests.get(signed_playlist, timeout=15)
        segment = next(line for line in answer.text.splitlines() if line and not line.startswith("#"))
        assert "session=" in segment
        admitted = requests.get(f"{platform.media}/signed/cam/{segment}", timeout=10)
        # (for that viewer only: a shared cache, as `make run`'s nginx, must never give it to another client)
        assert admitted.status_code == 200 and admitted.headers["Cache-Control"].startswith("private,")
        assert requests.get(f"{platform.media}/signed/cam/{segment.split('?')[0]}", timeout=10).status_code == 403
        # A real player follows the session through the playlist to the segments.
        assert codecs(ffprobe(signed_playlist))["video"]["codec_name"] == "h264"
        assert requests.get(signed_url(playlist, expires_in=-1), timeout=10).status_code == 403
        # LL-HLS: the session goes through the master playlist, chunklist, init segment and parts.
        llhls = f"{platform.media}/signed/cam/llhls.m3u8"
        assert requests.get(llhls, timeout=15).status_code == 403
        assert codecs(ffprobe(signed_url(llhls)))["video"]["codec_name"] == "h264"
    finally:
        publisher.kill()
        publisher.wait()


# --- admission webhook ---------------------------------------------------------------------------


def test_the_webhook_allows_denies_rewrites_and_times_out(platform, control_server):
    allowed = publish(platform, "hooked/guest?token=t1")
    renamed = publish(platform, "hooked/rename")
    try:
        wait_for(lambda: {"guest", "renamed"} <= set(live(platform, "hooked")), 20)
        assert "rename" not in live(platform, "hooked")
        assert "Access denied: not on the guest list" in refused(publish(platform, "hooked/denied"))
        refused(publish(platform, "hooked/slow"))
        assert "denied" not in live(platform, "hooked") and "slow" not in live(platform, "hooked")
        log = platform.log("engine")
        assert "not on the guest list" in log and "the admission webhook timed out" in log
        first = next(body for body in control_server.requests if "/guest" in body["request"]["url"])
        assert first["request"]["direction"] == "incoming" and first["request"]["protocol"] == "rtmp"
        assert first["request"]["url"].endswith("/hooked/guest?token=t1")
        assert first["client"]["address"] == "127.0.0.1" and first["signature"]
        # HLS viewers: one webhook call per viewer, not one per request.
        playlist = f"{platform.media}/hooked/guest/ts:playlist.m3u8?viewer=v1"
        before = len(control_server.requests)
        assert codecs(ffprobe(playlist))["video"]["codec_name"] == "h264"
        hls_calls = [body for body in control_server.requests[before:] if body["request"]["protocol"] == "hls"]
        assert len(hls_calls) == 1 and hls_calls[0]["request"]["direction"] == "outgoing"
    finally:
        for publisher in (allowed, renamed):
            publisher.kill()
            publisher.wait()


# --- WCS stream ACL keys -------------------------------------------------------------------------


def wcs(platform, method: str, body: dict) -> requests.Response:
    return requests.post(f"{platform.url}/rest-api/cdn/stream/access_list/{method}", json=body, timeout=10)


def test_acl_keys_refuse_plays_without_the_key(platform):
    assert wcs(platform, "add", {"name": "aclcam", "keys": [ACL_KEY]}).status_code == 404
    publisher = publish(platform, "app/aclcam", seconds=60)
    try:
        wait_for(lambda: "aclcam" in live(platform, "app"), 20)
        assert wcs(platform, "add", {"name": "aclcam", "keys": [ACL_KEY, "other"]}).status_code == 200
        assert sorted(wcs(platform, "print", {"name": "aclcam"}).json()) == sorted([ACL_KEY, "other"])
        rtmp = f"{platform.rtmp}/app/aclcam"
        hls = f"{platform.media}/app/aclcam/ts:playlist.m3u8"
        # The engine picks the keys up within its configuration cache time.
        wait_for(lambda: requests.get(hls, timeout=15).status_code == 403, 15)
        assert probe_fails(rtmp)
        assert probe_fails(f"{rtmp}?aclAuth=wrong")
        assert codecs(ffprobe(f"{rtmp}?aclAuth={ACL_KEY}"))["video"]["codec_name"] == "h264"
        assert codecs(ffprobe(f"{hls}?aclAuth={ACL_KEY}"))["video"]["codec_name"] == "h264"
        assert wcs(platform, "delete", {"name": "aclcam"}).status_code == 200
        assert wcs(platform, "print", {"name": "aclcam"}).status_code == 404
        wait_for(lambda: requests.get(hls, timeout=15).status_code == 200, 15)
        assert codecs(ffprobe(rtmp))["video"]["codec_name"] == "h264"
    finally:
        publisher.kill()
        publisher.wait()
