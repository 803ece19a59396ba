"""The Pusher against a real engine node fed by ffmpeg: to nginx-rtmp, MPEG-TS over UDP, SRT, with
retries while the target is down; and validate_push_target."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from media_engine.jobs.push import (
    Pusher,
    PushProgress,
    SourceUnavailable,
    backoff_delay,
    ffmpeg_has_protocol,
    join_stream_key,
    pyav_has_protocol,
    validate_push_target,
)

from .conftest import (
    EXPECTED_CODECS,
    EngineThread,
    codecs,
    ffprobe,
    free_port,
    publish_command,
    start_ffprobe,
)


@dataclass
class PushRun:
    """A Pusher running in a thread, with the states and progress it reported."""

    stop: threading.Event = field(default_factory=threading.Event)
    states: list[tuple[str, str | None]] = field(default_factory=list)
    progress: list[PushProgress] = field(default_factory=list)
    slept: list[float] = field(default_factory=list)
    error: BaseException | None = None
    pusher: Pusher | None = None
    thread: threading.Thread | None = None
    returned_at: float | None = None

    def _run(self) -> None:
        try:
            self.pusher.run()
        except BaseException as error:  # noqa: BLE001 - checked by the tests
            self.error = error
        self.returned_at = time.monotonic()

    def count(self, state: str) -> int:
        return sum(1 for seen, _ in self.states if seen == state)

    def wait_for(self, state: str, times: int = 1, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(state) < times:
            assert self.thread.is_alive() or self.count(state) >= times, f"ended without {state!r}: {self.states}"
            assert time.monotonic() < deadline, f"no {state!r} in {self.states}"
            time.sleep(0.02)

    def finish(self, timeout: float = 10.0) -> None:
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the pusher did not stop"


def pushing(source_url: str, protocol: str, url: str, speedup: float = 1.0, **options) -> PushRun:
    """Start a Pusher in a thread; its backoff waits are recorded and sped up ``speedup`` times."""
    run = PushRun()

    def sleep(seconds: float) -> None:
        run.slept.append(seconds)
        time.sleep(seconds / speedup)

    run.pusher = Pusher(
        source_url,
        protocol,
        url,
        should_stop=run.stop.is_set,
        on_state=lambda state, error: run.states.append((state, error)),
        on_progress=run.progress.append,
        sleep=sleep,
        **options,
    )
    run.thread = threading.Thread(target=run._run, daemon=True)
    run.thread.start()
    return run


@pytest.fixture(scope="module")
def live_source(engine: EngineThread) -> Iterator[str]:
    """A stream published for the whole module."""
    process = subprocess.Popen(publish_command(engine.url("live"), None), stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not engine.is_live("live"):
        assert process.poll() is None and time.monotonic() < deadline, "the stream did not go live"
        time.sleep(0.05)
    yield engine.url("live")
    process.terminate()
    process.wait(10)


def probed_codecs(prober: subprocess.Popen, timeout: float = 20.0) -> set:
    out, err = prober.communicate(timeout=timeout)
    assert prober.returncode == 0, err
    return codecs(json.loads(out))


def test_push_rtmp_to_nginx(live_source: str, nginx):
    server = nginx()
    run = pushing(live_source, "rtmp", server.url(), stream_key="key")
    try:
        run.wait_for("started")
        assert run.states[0] == ("started", None)
        assert codecs(ffprobe(server.url("key"))) == EXPECTED_CODECS
        time.sleep(1.2)
        assert run.progress, "no progress reported"
        last = run.progress[-1]
        assert last.sequence == 1 and last.sent_bytes == last.total_sent_bytes > 10_000
        assert last.sent_time_ms >= 1000
    finally:
        run.finish()
    assert run.error is None
    assert run.states == [("started", None), ("stopped", None)]


def test_push_mpegts_over_udp(live_source: str):
    port = free_port(socket.SOCK_DGRAM)
    prober = start_ffprobe(f"udp://127.0.0.1:{port}")
    time.sleep(0.3)  # let ffprobe bind the port
    run = pushing(live_source, "mpegts", f"udp://127.0.0.1:{port}")
    try:
        assert probed_codecs(prober) == EXPECTED_CODECS
    finally:
        prober.kill()
        run.finish()
    assert run.error is None
    assert run.states == [("started", None), ("stopped", None)]


def test_push_srt(live_source: str):
    # PyAV's wheel has no libsrt: the push runs Debian's ffmpeg, which has it.
    assert not pyav_has_protocol("srt")
    assert ffmpeg_has_protocol("srt"), "Debian's /usr/bin/ffmpeg has no SRT output"
    port = free_port(socket.SOCK_DGRAM)
    prober = start_ffprobe(f"srt://127.0.0.1:{port}?mode=listener")
    time.sleep(0.3)
    run = pushing(live_source, "srt", f"srt://127.0.0.1:{port}?mode=caller")
    assert run.pusher.use_ffmpeg
    try:
        assert probed_codecs(prober) == EXPECTED_CODECS
        run.wait_for("started")
    finally:
        prober.kill()
        run.finish()
    assert run.error is None
    assert run.states[0] == ("started", None) and run.states[-1] == ("stopped", None)
    assert run.pusher.progress.total_sent_bytes > 0


def test_srt_push_retries_while_nobody_listens(live_source: str):
    assert ffmpeg_has_protocol("srt"), "Debian's /usr/bin/ffmpeg has no SRT output"
    run = pushing(live_source, "srt", f"srt://127.0.0.1:{free_port(socket.SOCK_DGRAM)}?mode=caller")
    try:
        run.wait_for("retrying")
    finally:
        run.finish()
    state, error = run.states[0]
    assert state == "retrying" and "srt://127.0.0.1" in error
    assert run.states[-1] == ("stopped", None)


def test_srt_push_of_a_missing_source_is_an_error(engine: EngineThread):
    assert ffmpeg_has_protocol("srt"), "Debian's /usr/bin/ffmpeg has no SRT output"
    run = pushing(engine.url("nobody"), "srt", f"srt://127.0.0.1:{free_port(socket.SOCK_DGRAM)}")
    run.thread.join(10)
    assert isinstance(run.error, SourceUnavailable)
    assert [state for state, _ in run.states] == ["error"]


def test_push_retries_with_backoff_until_the_target_is_up_and_after_it_drops(live_source: str, nginx):
    port = free_port()
    asked: list[float] = []  # the source URL is asked for again at every connection (fresh job tokens)
    source = lambda: asked.append(time.monotonic()) or live_source  # noqa: E731
    run = pushing(source, "rtmp", f"rtmp://127.0.0.1:{port}/live", stream_key="again", speedup=4)
    try:
        run.wait_for("retrying", times=3)
        assert len(asked) >= 3
        state, error = run.states[0]
        assert state == "retrying" and "Connection refused" in error and f":{port}/live/again" in error
        server = nginx(port)
        run.wait_for("started")
        retries = run.count("retrying")
        assert run.states[:retries] == [("retrying", run.states[i][1]) for i in range(retries)]
        assert sum(run.slept) == sum(backoff_delay(n) for n in range(1, retries + 1))  # 1 + 2 + 4 ...
        assert codecs(ffprobe(server.url("again"))) == EXPECTED_CODECS

        server.stop()  # the target drops the connection
        run.wait_for("retrying", times=retries + 1)
        assert run.states[-1][1], "the drop has an error text"
    finally:
        run.finish()
    assert run.error is None and run.states[-1] == ("stopped", None)


def test_the_end_of_the_source_ends_the_push(engine: EngineThread, publish):
    publish("short", seconds=2)
    run = pushing(engine.url("short"), "mpegts", f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}")
    run.thread.join(10)
    assert not run.thread.is_alive()
    assert run.error is None
    assert run.states == [("started", None), ("stopped", None)]


def test_a_stop_during_the_backoff_is_seen_at_once(live_source: str):
    run = pushing(live_source, "rtmp", f"rtmp://127.0.0.1:{free_port()}/live/key", first_backoff=30)
    run.wait_for("retrying")
    time.sleep(0.5)
    stopped_at = time.monotonic()
    run.finish()
    assert run.returned_at - stopped_at < 0.6
    assert [state for state, _ in run.states] == ["retrying", "stopped"]


def test_a_missing_source_is_an_error(engine: EngineThread):
    run = pushing(engine.url("nobody"), "mpegts", "udp://127.0.0.1:9")
    run.thread.join(10)
    assert isinstance(run.error, SourceUnavailable)
    assert [state for state, _ in run.states] == ["error"] and "nobody" in run.states[0][1]


def test_backoff_doubles_up_to_thirty_seconds():
    assert [backoff_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff_delay(1000) == 30


def test_stream_key_is_joined_as_ome_does():
    assert join_stream_key("rtmp://host/app", "key") == "rtmp://host/app/key"
    assert join_stream_key("rtmp://host/app/", "key") == "rtmp://host/app/key"
    assert join_stream_key("rtmp://host/app/stream", None) == "rtmp://host/app/stream"
    assert join_stream_key("rtmp://host/app/stream", "") == "rtmp://host/app/stream"


@pytest.mark.parametrize(
    ("protocol", "url"),
    [
        ("rtmp", "rtmp://example.com/app/stream"),
        ("rtmp", "rtmp://example.com:1935/app"),
        ("RTMP", "rtmps://live.example.com:443/app"),
        ("rtmp", " rtmp://10.0.0.1/live "),
        ("mpegts", "udp://239.0.0.1:5000"),
        ("mpegts", "tcp://127.0.0.1:9000?listen=0"),
        ("mpegts", "udp://[::1]:1234"),
        ("srt", "srt://127.0.0.1:9999?mode=caller&latency=200000"),
    ],
)
def test_validate_push_target_accepts(protocol: str, url: str):
    assert validate_push_target(protocol, url) == url.strip()


@pytest.mark.parametrize(
    ("protocol", "url", "message"),
    [
        ("hls", "http://example.com/x", "unknown push protocol 'hls'"),
        ("", "rtmp://example.com/app", "unknown push protocol"),
        ("rtmp", "", "needs a target URL"),
        ("rtmp", "udp://example.com:5000", "needs a rtmp:// or rtmps:// URL"),
        ("rtmp", "rtmp://example.com", "needs an application path"),
        ("rtmp", "rtmp:///app/stream", "no valid host"),
        ("rtmp", "rtmp://exa mple.com/app", "must not contain spaces"),
        ("rtmp", "rtmp://example.com:99999/app", "is not valid"),
        ("rtmp", "rtmp://example.com:port/app", "is not valid"),
        ("mpegts", "udp://example.com", "needs a port"),
        ("mpegts", "srt://example.com:9000", "needs a udp:// or tcp:// URL"),
        ("mpegts", "udp://bad_host!:5000", "no valid host"),
        ("mpegts", "udp://example.com:0", "port 0"),
        ("srt", "udp://example.com:9000", "needs a srt:// URL"),
        ("srt", "srt://example.com", "needs a port"),
    ],
)
def test_validate_push_target_rejects(protocol: str, url: str, message: str):
    with pytest.raises(ValueError, match=message.replace("?", r"\?")):
        validate_push_target(protocol, url)


def test_pusher_validates_its_target():
    with pytest.raises(ValueError, match="needs a port"):
        Pusher("rtmp://127.0.0.1/app/x", "srt", "srt://example.com")
