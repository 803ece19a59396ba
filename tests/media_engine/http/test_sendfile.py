"""Segment and part files sent with sendfile: whole, with their headers, even once deleted, and a client that
stops reading is dropped after the send timeout."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import aiohttp
from aiohttp import web

from media_engine.http.sendfile import SENDFILE_PIECE, file_response

HEADERS = {"Cache-Control": "public, max-age=31536000, immutable", "Access-Control-Allow-Origin": "*"}


async def serve(handler) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_route("*", "/file", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


def test_a_file_is_sent_whole_with_its_headers_even_once_deleted(tmp_path: Path) -> None:
    content = os.urandom(3 * SENDFILE_PIECE + 1234)  # several sendfile pieces, the last one partial
    path = tmp_path / "seg_1.ts"
    path.write_bytes(content)
    opened: list[object] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        file = path.open("rb", buffering=0) if request.query.get("kind") != "memory" else io.BytesIO(content)
        opened.append(file)
        if request.query.get("delete"):
            path.unlink()  # (evicted from the window after the request found it)
        return await file_response(request, file, content_type="video/mp2t", headers=HEADERS, send_timeout=5)

    async def main() -> None:
        runner, port = await serve(handler)
        try:
            async with aiohttp.ClientSession() as client:
                for query in ("", "?kind=memory", "?delete=1"):
                    async with client.get(f"http://127.0.0.1:{port}/file{query}") as answer:
                        assert answer.status == 200
                        assert answer.headers["Content-Length"] == str(len(content))
                        assert answer.headers["Content-Type"] == "video/mp2t"
                        assert answer.headers["Access-Control-Allow-Origin"] == "*"
                        assert answer.headers["Cache-Control"] == HEADERS["Cache-Control"]
                        assert await answer.read() == content
                path.write_bytes(content)
                async with client.head(f"http://127.0.0.1:{port}/file") as answer:
                    assert answer.status == 200 and answer.headers["Content-Length"] == str(len(content))
                    assert await answer.read() == b""
                # The same keep-alive connection serves on after a file.
                async with client.get(f"http://127.0.0.1:{port}/file") as answer:
                    assert await answer.read() == content
        finally:
            await runner.cleanup()
        assert all(file.closed for file in opened)

    asyncio.run(main())


def test_a_client_that_stops_reading_a_file_is_dropped_after_the_send_timeout(tmp_path: Path) -> None:
    path = tmp_path / "big.ts"
    path.write_bytes(bytes(32 * 1024 * 1024))  # far more than the socket buffers on both sides hold
    timeouts: list[None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        return await file_response(
            request,
            path.open("rb", buffering=0),
            content_type="video/mp2t",
            headers=HEADERS,
            send_timeout=0.5,
            on_send_timeout=lambda: timeouts.append(None),
        )

    async def main() -> None:
        runner, port = await serve(handler)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
            await reader.readexactly(1000)  # reads a little, then nothing more
            async with asyncio.timeout(5):
                while not timeouts:
                    await asyncio.sleep(0.05)
            # The server closed the connection: what remains buffered ends with EOF or a reset.
            try:
                async with asyncio.timeout(5):
                    while await reader.read(1 << 20):
                        pass
            except ConnectionResetError:
                pass
            writer.close()
            # A client that reads gets the whole file.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /file HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            received = len(await asyncio.wait_for(reader.read(), 30))
            assert received > 32 * 1024 * 1024
            assert len(timeouts) == 1
            writer.close()
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_a_client_gone_before_the_headers_is_no_error(tmp_path: Path) -> None:
    """A request whose client closed its connection before the answer started (many at once when wrk
    ends) is over, not an error that aiohttp logs with a traceback."""
    path = tmp_path / "seg_1.ts"
    path.write_bytes(os.urandom(1000))
    outcomes: list[object] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        request.transport.close()  # the client's connection went away meanwhile
        try:
            response = await file_response(
                request, path.open("rb", buffering=0), content_type="video/mp2t", headers=HEADERS, send_timeout=5
            )
        except Exception as error:  # noqa: BLE001 - what the old code let out (aiohttp logged it)
            outcomes.append(error)
            raise
        outcomes.append(response)
        return response

    async def main() -> None:
        runner, port = await serve(handler)
        try:
            async with aiohttp.ClientSession() as client:
                try:
                    async with client.get(f"http://127.0.0.1:{port}/file") as answer:
                        await answer.read()
                except aiohttp.ClientError:
                    pass  # (the connection closed without an answer: as expected)
        finally:
            await runner.cleanup()

    asyncio.run(main())
    # (aiohttp's client asks once more on a connection closed under it)
    assert outcomes and all(isinstance(outcome, web.StreamResponse) for outcome in outcomes), outcomes
