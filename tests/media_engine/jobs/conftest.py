"""Fixtures of the record/push job tests: a real engine node in a background thread, ffmpeg
publishers into it, nginx-rtmp servers as push targets, and ffprobe."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.node import EngineNode, NodeAddresses

NGINX = "/usr/sbin/nginx"
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")

# `make test` installs these; a missing one must fail loudly, never skip.
assert shutil.which("ffmpeg") and shutil.which("ffprobe"), "ffmpeg/ffprobe missing: run `make test`"
assert Path(NGINX).exists() and RTMP_MODULE.exists(), "nginx with libnginx-mod-rtmp missing: run `make test`"


class EngineThread:
    """An `EngineNode` on loopback, its asyncio loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="engine", daemon=True)
        self.thread.start()
        addresses = NodeAddresses(rtmp_host="127.0.0.1", rtmp_port=0, http_host="127.0.0.1", http_port=0)
        self.node = EngineNode(StaticControlPlane([ApplicationConfig("default", "app")]), addresses)
        self.call(self.node.start())

    def call(self, coroutine: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def port(self) -> int:
        return self.node.rtmp.port

    def url(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/app/{name}"

    def is_live(self, name: str) -> bool:
        async def check() -> bool:
            return any(s.key.name == name and s.video_config is not None and s.gop for s in self.node.live_streams())

        return self.call(check())

    def close(self) -> None:
        self.call(self.node.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineThread]:
    node = EngineThread()
    yield node
    node.close()


def publish_command(url: str, seconds: float | None) -> list[str]:
    duration = ["-t", str(seconds)] if seconds is not None else []
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine",
        "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
        *duration, "-f", "flv", url,
    ]  # fmt: skip


Publish = Callable[..., subprocess.Popen]


@pytest.fixture
def publish(engine: EngineThread) -> Iterator[Publish]:
    """Start an ffmpeg test-pattern publisher of ``name`` (for ``seconds``, or until the test ends);
    returns once the engine has its first keyframe."""
    processes: list[subprocess.Popen] = []

    def start(name: str, seconds: float | None = None) -> subprocess.Popen:
        process = subprocess.Popen(publish_command(engine.url(name), seconds), stdin=subprocess.DEVNULL)
        processes.append(process)
        deadline = time.monotonic() + 10
        while not engine.is_live(name):
            assert process.poll() is None, "the publisher exited"
            assert time.monotonic() < deadline, "the stream did not go live"
            time.sleep(0.05)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
        process.wait(10)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Nginx:
    """nginx with the RTMP module serving ``application live { live on; }`` on a loopback port."""

    def __init__(self, folder: Path, port: int) -> None:
        self.port = port
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)  # the worker process runs as an unprivileged user
        config = folder / "nginx.conf"
        config.write_text(
            f"load_module {RTMP_MODULE};\n"
            "daemon off;\n"
            f"pid {folder}/nginx.pid;\n"
            f"error_log {folder}/error.log info;\n"
            "worker_processes 1;\n"
            "events { worker_connections 64; }\n"
            f"rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096; application live {{ live on; }} }} }}\n"
        )
        self.error_log = folder / "error.log"
        self.process = subprocess.Popen(
            [NGINX, "-p", str(folder), "-c", str(config)], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_for_port(port)
        except OSError:
            self.stop()
            raise AssertionError(f"nginx did not start: {self.log()}") from None

    def url(self, key: str = "") -> str:
        return f"rtmp://127.0.0.1:{self.port}/live" + (f"/{key}" if key else "")

    def log(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Nginx]]:
    """Start nginx-rtmp on ``port`` (a free one by default)."""
    servers: list[Nginx] = []

    def start(port: int | None = None) -> Nginx:
        folder = tmp_path_factory.mktemp("nginx")
        server = Nginx(folder, port or free_port())
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def ffprobe(target: str | Path, *extra: str, timeout: float = 20.0) -> dict[str, Any]:
    """ffprobe's JSON (format and streams) of a file or URL; fails the test if ffprobe fails."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", *extra, "-show_format", "-show_streams", "-of", "json", str(target)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"ffprobe {target}: {result.stderr}"
    return json.loads(result.stdout)


def start_ffprobe(target: str, *extra: str) -> subprocess.Popen:
    """ffprobe in the background, for listeners that must be up before the push starts."""
    return subprocess.Popen(
        ["ffprobe", "-v", "error", *extra, "-show_streams", "-of", "json", target],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def codecs(probe: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {(s["codec_type"], s["codec_name"], s.get("width"), s.get("height")) for s in probe.get("streams", [])}


EXPECTED_CODECS = {("video", "h264", 320, 240), ("audio", "aac", None, None)}
