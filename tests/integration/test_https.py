"""HTTPS with the vhosts' certificates: the API's TLS ports (OME 8082, WCS 8444) and the media port
(3334) pick the certificate by SNI, refuse a name without one, serve a reloaded certificate without
a restart, and HLS plays over HTTPS with the certificate verified (ffprobe, and hls.js and WHEP in
Chromium trusting the test certificate)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from tests.conftest import OME_AUTH
from tests.integration.conftest import CHROMIUM, CHROMIUM_ARGS, LiveStreamHub, _answers, wait_for
from tests.integration.test_webrtc import WEBRTC_CHROMIUM_ARGS
from tests.tools.certificates import CertificateAuthority

pytestmark = pytest.mark.services


class HttpsStreamHub(LiveStreamHub):
    """The platform as `make run` starts it with HTTPS: Daphne with its loopback port for the TLS
    proxy, `manage.py runtlsproxy`, and the engine with its HTTPS port."""

    def __init__(self, folder: Path, redis_url: str) -> None:
        super().__init__(folder, redis_url)
        self.ome_tls_port, self.wcs_tls_port = (int(port) for port in self.env["STREAMHUB_API_TLS_PORTS"].split(","))
        self.media_tls_port = int(self.env["STREAMHUB_MEDIA_HTTPS_PORT"])
        self.env["STREAMHUB_HTTPS"] = "1"  # served over HTTPS: HSTS on HTTPS answers
        # WHEP from Chromium on this machine: host candidates on loopback, a key frame every second.
        self.env["STREAMHUB_WEBRTC_ICE_ADDRESSES"] = "127.0.0.1"
        self.env["STREAMHUB_WEBRTC_KEYFRAME_INTERVAL"] = "1"

    def start(self, engine: bool = True, worker: bool = False) -> None:
        upstream = self.env["STREAMHUB_API_TLS_UPSTREAM_PORT"]
        self._spawn("api", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                            "-e", f"tcp:port={upstream}:interface=127.0.0.1", "streamhub.asgi:application"])  # fmt: skip
        self._spawn("tls-proxy", [sys.executable, "manage.py", "runtlsproxy", "--host", "127.0.0.1"])
        self._spawn("engine", [sys.executable, "manage.py", "runengine", "--rtmp-host", "127.0.0.1",
                               "--rtmp-port", str(self.rtmp_port), "--http-host", "127.0.0.1",
                               "--http-port", str(self.media_port)])  # fmt: skip
        wait_for(lambda: _answers(f"{self.url}/admin/login/"), 30, lambda: self.log("api"))
        wait_for(lambda: _answers(f"{self.media}/"), 30, lambda: self.log("engine"))
        wait_for(lambda: "API HTTPS" in self.log("tls-proxy"), 30, lambda: self.log("tls-proxy"))

    @property
    def tls_ports(self) -> dict[str, int]:
        return {"ome": self.ome_tls_port, "wcs": self.wcs_tls_port, "media": self.media_tls_port}


def curl(ca: CertificateAuthority, host: str, port: int, path: str = "/") -> subprocess.CompletedProcess:
    """curl over HTTPS to ``host`` (resolved to loopback) trusting only the test CA; -v shows the certificate."""
    return subprocess.run(
        ["curl", "-sv", "--max-time", "10", "--resolve", f"{host}:{port}:127.0.0.1", "--cacert", str(ca.pem),
         f"https://{host}:{port}{path}"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip


def served_subject(ca: CertificateAuthority, host: str, port: int) -> str | None:
    """The subject line curl printed for the server's certificate (None if the handshake failed)."""
    result = curl(ca, host, port)
    lines = [line for line in result.stderr.splitlines() if "subject:" in line]
    return lines[0].split("subject:", 1)[1].strip() if result.returncode == 0 and lines else None


@pytest.fixture(scope="module")
def https_platform(tmp_path_factory, redis_url):
    server = HttpsStreamHub(tmp_path_factory.mktemp("https"), redis_url)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ca(https_platform, tmp_path_factory):
    authority = CertificateAuthority(tmp_path_factory.mktemp("ca"))
    for vhost, host in (("va", "a.test"), ("vb", "b.test")):
        cert_path, key_path = authority.issue(host)
        created = https_platform.api(
            "POST", "/v1/vhosts",
            json=[{"name": vhost, "host": {"names": [host], "tls": {"certPath": str(cert_path), "keyPath": str(key_path)}}}],
        )  # fmt: skip
        assert created.status_code == 200, created.text
    created = https_platform.api("POST", "/v1/vhosts", json=[{"name": "vc", "host": {"names": ["c.test"]}}])
    assert created.status_code == 200, created.text
    return authority


def test_the_tls_ports_stay_closed_without_a_certificate(tmp_path, redis_url):
    server = HttpsStreamHub(tmp_path, redis_url)
    server.start()
    try:
        for port in server.tls_ports.values():
            result = curl(CertificateAuthority(tmp_path), "a.test", port)
            assert result.returncode == 7, result.stderr  # 7: could not connect
    finally:
        server.stop()


@pytest.mark.parametrize("port_name", ["ome", "wcs", "media"])
def test_each_name_gets_its_vhosts_certificate(https_platform, ca, port_name):
    port = https_platform.tls_ports[port_name]
    for host in ("a.test", "b.test"):
        subject = wait_for(
            lambda host=host: served_subject(ca, host, port), 15, lambda: https_platform.log("tls-proxy")
        )
        assert f"CN={host}" in subject


@pytest.mark.parametrize("port_name", ["ome", "wcs", "media"])
def test_a_name_without_a_certificate_is_refused_in_the_handshake(https_platform, ca, port_name):
    port = https_platform.tls_ports[port_name]
    wait_for(lambda: served_subject(ca, "a.test", port), 15)
    result = curl(ca, "c.test", port)
    assert result.returncode == 35, result.stderr  # 35: TLS handshake failed
    assert "unrecognized name" in result.stderr


def test_the_apis_answer_over_https(https_platform, ca):
    wait_for(lambda: served_subject(ca, "a.test", https_platform.ome_tls_port), 15)
    result = subprocess.run(
        ["curl", "-s", "--resolve", f"a.test:{https_platform.ome_tls_port}:127.0.0.1", "--cacert", str(ca.pem),
         "-H", f"Authorization: {OME_AUTH}", "-D", "-", f"https://a.test:{https_platform.ome_tls_port}/v1/vhosts"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert '"response":["default","va","vb","vc"]' in result.stdout.replace(" ", "")
    # The API server knows the request came over HTTPS (through the proxy): HSTS, only there.
    assert "strict-transport-security: max-age=31536000" in result.stdout.lower()
    plain = https_platform.api("GET", "/v1/vhosts")
    assert plain.status_code == 200 and "Strict-Transport-Security" not in plain.headers
    result = subprocess.run(
        ["curl", "-s", "--resolve", f"b.test:{https_platform.wcs_tls_port}:127.0.0.1", "--cacert", str(ca.pem),
         "-X", "POST", "-H", "Content-Type: application/json", "-d", "{}",
         f"https://b.test:{https_platform.wcs_tls_port}/rest-api/stream/find_all"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    # No stream is live: WCS's own answer to find_all, over HTTPS.
    assert json.loads(result.stdout)["message"] == "Streams not found"


def test_reload_certificate_serves_the_replaced_files_to_the_next_connection(https_platform, ca):
    for port in https_platform.tls_ports.values():
        wait_for(lambda port=port: served_subject(ca, "a.test", port), 15)
    ca.issue("a.test", organization="Renewed")
    # Replaced on disk but not reloaded: the loaded certificate is still served.
    for port in https_platform.tls_ports.values():
        assert "O=Renewed" not in served_subject(ca, "a.test", port)
    reloaded = https_platform.api("POST", "/v1/vhosts/va:reloadCertificate")
    assert reloaded.status_code == 200, reloaded.text
    for name, port in https_platform.tls_ports.items():
        wait_for(
            lambda port=port: "O=Renewed" in (served_subject(ca, "a.test", port) or ""), 10, lambda name=name: name
        )
        assert "O=Renewed" not in served_subject(ca, "b.test", port)


def test_hls_plays_over_https_with_the_certificate_verified(https_platform, ca):
    # ffprobe needs a name it can resolve to send SNI for: a vhost for "localhost" with its certificate.
    cert_path, key_path = ca.issue("localhost")
    vhost = {
        "name": "vl",
        "host": {"names": ["localhost"], "tls": {"certPath": str(cert_path), "keyPath": str(key_path)}},
    }
    assert https_platform.api("POST", "/v1/vhosts", json=[vhost]).status_code == 200
    assert https_platform.api("POST", "/v1/vhosts/vl/apps", json=[{"name": "app", "type": "live"}]).status_code == 200
    port = https_platform.media_tls_port
    wait_for(lambda: served_subject(ca, "localhost", port), 15)
    rtmp = f"rtmp://localhost:{https_platform.rtmp_port}/app/secure"
    publisher = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-t", "40", "-f", "flv", rtmp],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        url = f"https://localhost:{port}/app/secure/ts:playlist.m3u8"
        command = ["ffprobe", "-v", "error", "-tls_verify", "1", "-ca_file", str(ca.pem),
                   "-show_entries", "stream=codec_name", "-of", "csv=p=0", url]  # fmt: skip
        result = wait_for(
            lambda: (r := subprocess.run(command, capture_output=True, text=True, timeout=30)).returncode == 0 and r,
            40,
            lambda: https_platform.log("engine")[-2000:],
        )
        assert set(result.stdout.split()) == {"h264", "aac"}
        # The same playlist is refused by ffprobe when it cannot verify the certificate (no CA given).
        untrusted = subprocess.run(
            ["ffprobe", "-v", "error", "-tls_verify", "1", url], capture_output=True, text=True, timeout=30
        )
        assert untrusted.returncode != 0
    finally:
        publisher.kill()
        publisher.wait()


def chromium_trusting(ca: CertificateAuthority, base_args: list[str]) -> list[str]:
    """Chromium's arguments to reach a.test/c.test on loopback and trust a.test's served certificate
    by its key hash (no system CA store is changed)."""
    served = x509.load_pem_x509_certificate((ca.folder / "a.test.crt").read_bytes())
    spki = served.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return [
        *base_args,
        "--host-resolver-rules=MAP a.test 127.0.0.1, MAP c.test 127.0.0.1",
        f"--ignore-certificate-errors-spki-list={base64.b64encode(hashlib.sha256(spki).digest()).decode()}",
    ]


def test_chromium_opens_the_webrtc_page_over_https_as_a_secure_context(https_platform, ca):
    """Browsers let a page use the camera only in a secure context: the WebRTC page over HTTPS is one."""
    port = https_platform.media_tls_port
    wait_for(lambda: served_subject(ca, "a.test", port), 15)
    args = chromium_trusting(ca, CHROMIUM_ARGS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = browser.new_page()
            assert page.goto(f"https://a.test:{port}/").status == 200
            assert page.evaluate("window.isSecureContext") is True
            assert page.evaluate("fetch('/webrtc/config').then(response => response.status)") == 200
            with pytest.raises(PlaywrightError):  # c.test's vhost has no certificate: refused
                page.goto(f"https://c.test:{port}/")
        finally:
            browser.close()


HLS_JS = Path(__file__).resolve().parents[2] / "apps/streams/static/streams/vendor/hls.js/hls.min.js"
# hls.js playing a playlist of the page's origin into a new <video id="hls">; errors kept for the test.
PLAY_HLS = """url => {
    const video = document.createElement("video");
    video.id = "hls"; video.muted = true; document.body.append(video);
    window.hlsErrors = [];
    const hls = new Hls();
    hls.on(Hls.Events.ERROR, (event, data) => window.hlsErrors.push(data.details + (data.fatal ? " (fatal)" : "")));
    hls.loadSource(url); hls.attachMedia(video); video.play().catch(() => {});
}"""


@pytest.mark.browser
def test_chromium_plays_hls_and_whep_over_https(https_platform, ca):
    """A viewer's browser on https://a.test:3334: hls.js plays the HTTPS playlist (its segments come
    over HTTPS too) and the WebRTC page plays the stream over WHEP signalled over HTTPS."""
    port = https_platform.media_tls_port
    wait_for(lambda: served_subject(ca, "a.test", port), 15)
    created = https_platform.api("POST", "/v1/vhosts/va/apps", json=[{"name": "app", "type": "live"}])
    assert created.status_code == 200, created.text
    # Published over RTMP to loopback, into vhost va: its tcUrl names the host a.test.
    publisher = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-t", "60", "-f", "flv", "-rtmp_tcurl", f"rtmp://a.test:{https_platform.rtmp_port}/app",
         f"rtmp://127.0.0.1:{https_platform.rtmp_port}/app/tlscam"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(
            lambda: https_platform.api("GET", "/v1/vhosts/va/apps/app/streams").json().get("response") == ["tlscam"],
            30,
            lambda: https_platform.log("engine")[-2000:],
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=chromium_trusting(ca, WEBRTC_CHROMIUM_ARGS)
            )
            try:
                page = browser.new_page()
                assert page.goto(f"https://a.test:{port}/").status == 200
                # HLS: hls.js on the page's origin loads the playlist and segments over HTTPS.
                page.add_script_tag(path=str(HLS_JS))
                page.evaluate(PLAY_HLS, "/app/tlscam/ts:playlist.m3u8")
                page.wait_for_function(
                    "() => { const v = document.getElementById('hls'); return v.currentTime > 2 && v.videoWidth > 0; }",
                    timeout=45_000,
                )
                assert page.evaluate("() => [hls.videoWidth, hls.videoHeight]") == [640, 360]
                assert page.evaluate("() => window.hlsErrors.filter(e => e.includes('fatal'))") == []
                hls_requests = page.evaluate(
                    "() => performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('tlscam'))"
                )
                assert any(".ts" in name for name in hls_requests), hls_requests
                assert all(name.startswith(f"https://a.test:{port}/") for name in hls_requests), hls_requests
                # WHEP: the page's own player, offer and answer over HTTPS.
                page.fill("#stream", "tlscam")
                location = page.evaluate("streamhub.play()")
                assert location.startswith(f"https://a.test:{port}/app/tlscam/webrtc-session/")
                played = wait_for(
                    lambda: (s := page.evaluate("streamhub.stats()"))["framesDecoded"] > 25 and s,
                    30,
                    lambda: str(page.evaluate("streamhub.stats()")) + https_platform.log("engine")[-2000:],
                )
                assert (played["width"], played["height"]) == (640, 360)
                page.evaluate("streamhub.stop('whep')")
            finally:
                browser.close()
    finally:
        publisher.kill()
        publisher.wait()
