"""The engine's side of a web-server front (media_engine.http.front): the viewer's address believed only with the
front's token, and the front's viewer log read line by line across its rotations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web

from media_engine.http.front import CachedAnswer, FrontViewerLog, WebServerFront


def test_the_viewer_address_is_believed_only_with_the_fronts_token():
    class Server:  # what `install` needs of a MediaHttpServer without a viewer log
        app = web.Application()

    async def client(request: web.Request) -> web.Response:
        return web.Response(text=request.remote or "")

    async def main() -> list[str]:
        server = Server()
        WebServerFront("front-secret").install(server)
        server.app.router.add_get("/", client)
        runner = web.AppRunner(server.app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        seen = []
        try:
            async with aiohttp.ClientSession() as http:
                for headers in (
                    {"X-Real-IP": "203.0.113.7", "X-Real-Port": "5000", "X-StreamHub-Front": "front-secret"},
                    {"X-Real-IP": "203.0.113.7", "X-StreamHub-Front": "a-guess"},
                    {"X-Real-IP": "203.0.113.7"},
                ):
                    async with http.get(f"http://127.0.0.1:{port}/", headers=headers) as answer:
                        seen.append(await answer.text())
        finally:
            await runner.cleanup()
        return seen

    assert asyncio.run(main()) == ["203.0.113.7", "127.0.0.1", "127.0.0.1"]


def test_the_viewer_log_is_read_to_the_end_of_each_file_across_rotations(tmp_path: Path):
    path = tmp_path / "viewers.log"
    path.write_bytes(b"logged before the engine started\n")
    log = FrontViewerLog(path)
    assert log.read_lines() == []  # (what came before is not counted)
    with path.open("ab") as file:
        file.write(b"one\ntw")
    assert log.read_lines() == [b"one"]
    with path.open("ab") as file:
        file.write(b"o\nthree\n")
    path.rename(tmp_path / "viewers.log.1")  # the supervisor's rotation; nginx reopens the path
    assert log.read_lines() == [b"two", b"three"]
    path.write_bytes(b"four\n")
    assert log.read_lines() == [b"four"]
    assert log.read_lines() == []
    log.close()


def test_a_log_line_is_an_answer_or_nothing():
    line = b"203.0.113.7\tlive.example.com\t/app/cam/seg_1.ts\t200\t18800\tVLC/3.0 (Linux)"
    assert CachedAnswer.parse(line) == CachedAnswer(
        "203.0.113.7", "live.example.com", "/app/cam/seg_1.ts", 200, 18800, "VLC/3.0 (Linux)"
    )
    assert CachedAnswer.parse(b"1.2.3.4\th\t/a/b/c.ts\t200\t10\t-").user_agent == ""
    assert CachedAnswer.parse(b"garbage") is None
    assert CachedAnswer.parse(b"1.2.3.4\th\t/a/b/c.ts\tOK\t10\t-") is None
