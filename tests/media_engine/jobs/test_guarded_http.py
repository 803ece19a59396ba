"""HTTP(S) pulls read through `GuardedHttpOpener`: what FFmpeg would fetch on its own (redirects, the
segments an HLS playlist lists) is checked by the outbound policy connection by connection, and a
refused address is never contacted; allowed sources (HLS, MP4 with its index at the end) still play."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from media_engine.guarded_http import GuardedHttpOpener
from media_engine.jobs.pull import Puller, PullFailed
from media_engine.outbound import OutboundPolicy

ALLOW_ONE = OutboundPolicy.from_allow_list(["127.0.0.1/32"])  # 127.0.0.2 stays a refused loopback address


class Server:
    """A folder served over HTTP on ``host``; ``requests`` lists the paths asked for; ``redirects``
    maps a path to a Location."""

    def __init__(self, host: str, folder: Path) -> None:
        self.requests: list[str] = []
        self.redirects: dict[str, str] = {}
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer((host, 0), functools.partial(Handler, directory=str(folder)))
        self.base = f"http://{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def make_hls(folder: Path, segment_base: str = "") -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
         "-f", "lavfi", "-i", "sine", "-t", "4", "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-f", "hls", "-hls_time", "1", "-hls_list_size", "0",
         *(["-hls_base_url", segment_base] if segment_base else []), str(folder / "index.m3u8")],
        check=True,
    )  # fmt: skip


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """An allowed server (127.0.0.1) and a refused one (127.0.0.2), each with its own folder."""
    (tmp_path / "allowed").mkdir()
    (tmp_path / "refused").mkdir()
    allowed, refused = Server("127.0.0.1", tmp_path / "allowed"), Server("127.0.0.2", tmp_path / "refused")
    yield allowed, refused
    allowed.close()
    refused.close()


def packets(url: str, policy: OutboundPolicy) -> int:
    container = av.open(url, options={"http_persistent": "0"}, timeout=5, io_open=GuardedHttpOpener(5, policy))
    try:
        return sum(1 for packet in container.demux() if packet.size)
    finally:
        container.close()


def test_an_allowed_hls_source_plays(servers, tmp_path):
    allowed, _ = servers
    make_hls(tmp_path / "allowed")
    assert packets(f"{allowed.base}/index.m3u8", ALLOW_ONE) > 100
    assert any(path.endswith(".ts") for path in allowed.requests)


def test_an_mp4_with_its_index_at_the_end_plays(servers, tmp_path):
    allowed, _ = servers
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "2",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(tmp_path / "allowed" / "clip.mp4")],
        check=True,
    )  # fmt: skip
    assert packets(f"{allowed.base}/clip.mp4", ALLOW_ONE) == 50


def test_hls_segments_on_a_refused_address_are_never_fetched(servers, tmp_path):
    allowed, refused = servers
    # A playlist on an allowed host that lists its segments somewhere refused (e.g. 169.254.169.254).
    make_hls(tmp_path / "allowed", segment_base=f"{refused.base}/")
    for segment in (tmp_path / "allowed").glob("*.ts"):
        segment.rename(tmp_path / "refused" / segment.name)
    with pytest.raises(Exception):  # noqa: B017 - FFmpeg finds no stream in what it could not read
        assert packets(f"{allowed.base}/index.m3u8", ALLOW_ONE) == 0
    assert allowed.requests == ["/index.m3u8"]
    assert refused.requests == []


def test_a_redirect_to_a_refused_address_is_not_followed(servers, tmp_path):
    allowed, refused = servers
    # Segments named by absolute URLs: FFmpeg resolves relative ones against the URL it asked for.
    make_hls(tmp_path / "refused", segment_base=f"{refused.base}/")
    allowed.redirects["/index.m3u8"] = f"{refused.base}/index.m3u8"
    with pytest.raises(ValueError, match="127.0.0.2 is a loopback address"):
        packets(f"{allowed.base}/index.m3u8", ALLOW_ONE)
    assert refused.requests == []
    # The same redirect, allowed, is followed.
    assert packets(f"{allowed.base}/index.m3u8", OutboundPolicy.from_allow_list(["127.0.0.0/8"])) > 100


@pytest.mark.django_db
def test_a_pull_of_an_hls_source_with_refused_segments_fails(servers, tmp_path, settings):
    settings.OUTBOUND_ALLOW = ["127.0.0.1/32"]
    allowed, refused = servers
    make_hls(tmp_path / "allowed", segment_base=f"{refused.base}/")
    for segment in (tmp_path / "allowed").glob("*.ts"):
        segment.rename(tmp_path / "refused" / segment.name)
    puller = Puller([f"{allowed.base}/index.m3u8"], "rtmp://127.0.0.1:1/app/x", open_timeout=5)
    with pytest.raises(PullFailed):
        puller.run()
    assert refused.requests == []
