"""Limits of the media HTTP port with raw sockets: idle and slow-header connections closed after the
header timeout, idle keep-alive connections after the keep-alive timeout, a 503 beyond the cap, while
a well-behaved keep-alive client is served throughout; and rate-limited logs of loop errors."""

from __future__ import annotations

import asyncio
import errno
import logging
import sys

from aiohttp import web

from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.hls.segmenter import HlsPackager
from media_engine.http.limits import HttpLimits
from media_engine.http.server import MediaHttpServer
from media_engine.log_limits import RateLimitedErrors, RepeatedTracebacks
from media_engine.registry import StreamRegistry

REQUEST = b"GET /app/nothing/ts:playlist.m3u8 HTTP/1.1\r\nHost: localhost\r\n\r\n"


async def start_server(limits: HttpLimits) -> MediaHttpServer:
    registry = StreamRegistry()
    control = StaticControlPlane([ApplicationConfig("default", "app")])
    server = MediaHttpServer(
        registry, control, HlsPackager.for_control_plane(registry, control), "127.0.0.1", 0, limits=limits
    )
    await server.start()
    return server


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True if the server closes (EOF or reset) within ``seconds``, reading whatever it sends."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """One keep-alive request; the status line of its answer (the body is read too)."""
    writer.write(REQUEST)
    status = await asyncio.wait_for(reader.readline(), 5)
    length = 0
    while (line := await asyncio.wait_for(reader.readline(), 5)) != b"\r\n":
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


def test_idle_and_slow_header_connections_are_closed_after_the_header_timeout():
    async def main() -> None:
        server = await start_server(HttpLimits(header_timeout=0.5, keepalive_timeout=5))
        try:
            idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(20)]
            slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", server.port)

            async def trickle() -> None:  # slowloris: a header byte every 0.1 s, never the end of it
                for byte in REQUEST[:-4]:
                    slow_writer.write(bytes([byte]))
                    await asyncio.sleep(0.1)

            trickler = asyncio.create_task(trickle())
            good = await asyncio.open_connection("127.0.0.1", server.port)
            assert await ask(*good) == b"HTTP/1.1 404 Not Found\r\n"
            results = await asyncio.gather(*(closed_within(reader, 3) for reader, _ in idle))
            assert all(results)
            assert await closed_within(slow_reader, 3)
            trickler.cancel()
            assert server.connections.header_timeouts == 21
            # The keep-alive client that sent whole requests is still served on its connection.
            assert await ask(*good) == b"HTTP/1.1 404 Not Found\r\n"
            assert server.connections.open == 1
        finally:
            await server.stop()

    asyncio.run(main())


def test_idle_keep_alive_connections_are_closed_after_the_keep_alive_timeout():
    async def main() -> None:
        server = await start_server(HttpLimits(header_timeout=5, keepalive_timeout=0.5))
        try:
            quiet = await asyncio.open_connection("127.0.0.1", server.port)
            busy = await asyncio.open_connection("127.0.0.1", server.port)
            assert await ask(*quiet) == b"HTTP/1.1 404 Not Found\r\n"
            for _ in range(10):  # 2 s of requests every 0.2 s: never idle long enough to be closed
                assert await ask(*busy) == b"HTTP/1.1 404 Not Found\r\n"
                await asyncio.sleep(0.2)
            assert await closed_within(quiet[0], 0.1)  # closed long ago
            assert not busy[0].at_eof()
            assert await closed_within(busy[0], 3)  # and the busy one once it goes quiet
        finally:
            await server.stop()

    asyncio.run(main())


def test_beyond_the_cap_connections_get_a_503_and_the_port_serves_again_once_they_are_gone():
    async def main() -> None:
        server = await start_server(HttpLimits(header_timeout=1.0, keepalive_timeout=5, max_connections=10))
        try:
            good = await asyncio.open_connection("127.0.0.1", server.port)
            assert await ask(*good) == b"HTTP/1.1 404 Not Found\r\n"
            idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(9)]
            await asyncio.sleep(0.1)
            assert server.connections.open == 10
            for _ in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(REQUEST)
                answer = await asyncio.wait_for(reader.read(), 5)
                assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
                assert b"Retry-After: 1\r\n" in answer and answer.endswith(b"too many connections\n")
                writer.close()
            assert server.connections.refused == 3
            # The client that was in before the flood goes on being served.
            assert await ask(*good) == b"HTTP/1.1 404 Not Found\r\n"
            # The idle ones are closed after the header timeout: new clients get in again.
            assert all(await asyncio.gather(*(closed_within(reader, 3) for reader, _ in idle)))
            fresh = await asyncio.open_connection("127.0.0.1", server.port)
            assert await ask(*fresh) == b"HTTP/1.1 404 Not Found\r\n"
        finally:
            await server.stop()

    asyncio.run(main())


def test_the_cap_stays_under_half_the_open_file_limit():
    assert HttpLimits(max_connections=10_000).effective_max_connections(fd_limit=1024) == 512
    assert HttpLimits(max_connections=0).effective_max_connections(fd_limit=20_000) == 10_000
    assert HttpLimits(max_connections=100).effective_max_connections(fd_limit=20_000) == 100


class FakeLoop:
    def __init__(self) -> None:
        self.logged: list[dict] = []

    def default_exception_handler(self, context: dict) -> None:
        self.logged.append(context)


def test_identical_loop_errors_are_logged_once_per_interval_with_a_count(caplog):
    now = [0.0]
    handler = RateLimitedErrors(interval=10, clock=lambda: now[0])
    loop = FakeLoop()
    emfile = {"message": "socket.accept() out of system resource", "exception": OSError(errno.EMFILE, "Too many")}
    other = {"message": "Task exception was never retrieved", "exception": RuntimeError("x")}
    with caplog.at_level(logging.ERROR, logger="media_engine.log_limits"):
        for _ in range(5000):
            handler(loop, emfile)
        handler(loop, other)
        assert [context["message"] for context in loop.logged] == [emfile["message"], other["message"]]
        assert handler.suppressed == 4999 and caplog.records == []
        now[0] = 10.5
        handler(loop, emfile)
    assert len(loop.logged) == 2  # no second traceback
    [record] = caplog.records
    assert "4999 more like it" in record.getMessage() and "Too many" in record.getMessage()


def test_repeated_tracebacks_are_logged_once_per_interval_with_a_count():
    now = [0.0]
    repeated = RepeatedTracebacks(interval=10, clock=lambda: now[0])
    records = []
    for index in range(1000):
        try:
            raise OSError(errno.EMFILE, "Too many open files")
        except OSError:
            record = logging.LogRecord("apps.engine", logging.ERROR, __file__, 1, "heartbeat %d failed", (index,), None)
            record.exc_info = sys.exc_info()
        if repeated.filter(record):
            records.append(record)
    plain = logging.LogRecord("apps.engine", logging.INFO, __file__, 1, "publishing %s", ("x",), None)
    assert repeated.filter(plain) and repeated.filter(plain)  # records without a traceback all pass
    assert len(records) == 1 and records[0].exc_info is not None and repeated.suppressed == 999
    now[0] = 11
    try:
        raise OSError(errno.EMFILE, "Too many open files")
    except OSError:
        record = logging.LogRecord("apps.engine", logging.ERROR, __file__, 1, "heartbeat %d failed", (1000,), None)
        record.exc_info = sys.exc_info()
    assert repeated.filter(record) and record.exc_info is None
    assert record.getMessage().startswith("heartbeat 1000 failed (again: ")
    assert "999 more like it in the last 10s not logged" in record.getMessage()


def test_a_client_that_stops_reading_its_answer_is_dropped_after_the_send_timeout():
    async def main() -> None:
        registry = StreamRegistry()
        control = StaticControlPlane([ApplicationConfig("default", "app")])
        limits = HttpLimits(header_timeout=5, keepalive_timeout=5, send_timeout=0.5)
        server = MediaHttpServer(registry, control, HlsPackager.for_control_plane(registry, control), "127.0.0.1", 0, limits=limits)  # fmt: skip
        big = bytes(32 * 1024 * 1024)  # far more than the socket buffers on both sides hold

        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(body=big)

        server.add_route("GET", "/big", handler)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            await reader.readexactly(1000)  # reads a little, then nothing more
            await eventually(lambda: server.connections.send_timeouts == 1, 5)
            await eventually(lambda: server.connections.open == 0, 5)
            # A client that reads gets the whole answer.
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            received = len(await asyncio.wait_for(reader.read(), 30))
            assert received > len(big)
            assert server.connections.send_timeouts == 1
        finally:
            await server.stop()

    asyncio.run(main())


async def eventually(condition, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)
