"""End to end with Debian's ffmpeg and ffprobe on loopback: publish, probe, play, refusals, garbage."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
from collections.abc import Callable, Coroutine
from typing import Any

from media_engine.registry import StreamKey
from media_engine.rtmp.handshake import client_c0c1

from .rtmp_client import running_server

# `make test` installs ffmpeg; a missing one must fail loudly, never skip.
assert shutil.which("ffmpeg") and shutil.which("ffprobe"), "ffmpeg/ffprobe missing: run `make test`"

KEY = StreamKey("default", "app", "stream")


def run(scenario: Callable[[], Coroutine[Any, Any, None]], timeout: float = 30.0) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout))


def publish_command(url: str, seconds: float) -> list[str]:
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
        "-f", "lavfi", "-i", "sine",
        "-c:v", "libx264", "-g", "25", "-c:a", "aac",
        "-t", str(seconds), "-f", "flv", url,
    ]  # fmt: skip


async def start(*command: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def finish(process: asyncio.subprocess.Process, timeout: float = 15.0) -> tuple[int, str, str]:
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def wait_live(registry, key: StreamKey = KEY, timeout: float = 10.0):
    async with asyncio.timeout(timeout):
        while True:
            stream = registry.get(key)
            if stream is not None and stream.video_config is not None and stream.gop:
                return stream
            await asyncio.sleep(0.05)


async def probe(url: str) -> tuple[int, list[dict[str, Any]]]:
    process = await start("ffprobe", "-v", "error", "-show_streams", "-of", "json", url)
    code, out, err = await finish(process)
    return code, json.loads(out or "{}").get("streams", []) if code == 0 else []


def summary(streams: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(s["codec_type"], s["codec_name"], s.get("width"), s.get("height")) for s in streams}


EXPECTED = {("video", "h264", 320, 240), ("audio", "aac", None, None)}


def test_ffmpeg_publishes_and_ffprobe_and_three_readers_play():
    async def scenario():
        async with running_server() as server:
            url = f"rtmp://127.0.0.1:{server.port}/app/stream"
            publisher = await start(*publish_command(url, 4))
            stream = await wait_live(server.registry)
            opened = []
            count_opened = stream.counters.connection_opened
            stream.counters.connection_opened = lambda protocol: (opened.append(protocol), count_opened(protocol))

            readers = [
                start("ffmpeg", "-nostdin", "-hide_banner", "-i", url, "-t", "2", "-c", "copy", "-f", "null", "-")
                for _ in range(3)
            ]
            (probe_code, streams), *results = await asyncio.gather(
                probe(url), *[finish(await reader) for reader in readers]
            )
            assert probe_code == 0
            assert summary(streams) == EXPECTED
            for code, _, err in results:
                assert code == 0, err
                assert "Video: h264" in err and "320x240" in err and "Audio: aac" in err, err

            code, _, err = await finish(publisher)
            assert code == 0, err
            assert stream.ended and server.registry.get(KEY) is None
            counters = stream.counters
            assert counters.total_bytes_in > 50_000
            assert opened == ["rtmp"] * 4  # ffprobe and three readers
            assert counters.max_total_connections >= 2  # they overlap (usually all four)
            assert counters.connections["rtmp"] == 0
            assert counters.total_bytes_out > 3 * 20_000

    run(scenario)


def test_ffmpeg_cannot_publish_to_an_unknown_application():
    async def scenario():
        async with running_server(apps=("app",)) as server:
            url = f"rtmp://127.0.0.1:{server.port}/other/stream"
            code, _, err = await finish(await start(*publish_command(url, 1)))
            assert code != 0
            assert "Server error: Application 'other' not found." in err, err
            assert server.registry.streams() == []

    run(scenario)


def test_a_second_ffmpeg_cannot_publish_a_live_name():
    async def scenario():
        async with running_server() as server:
            url = f"rtmp://127.0.0.1:{server.port}/app/stream"
            first = await start(*publish_command(url, 10))
            stream = await wait_live(server.registry)
            code, _, err = await finish(await start(*publish_command(url, 1)))
            assert code != 0
            assert "already publishing" in err, err
            assert server.registry.get(KEY) is stream and not stream.ended
            assert first.returncode is None  # the first publisher is still going
            stream.stop()  # and the API's stop disconnects it
            code, _, _ = await finish(first, timeout=5)
            assert server.registry.get(KEY) is None and stream.ended

    run(scenario)


async def garbage_client(port: int, kind: int) -> None:
    """Connect, misbehave in one of several ways, then wait for the server to hang up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rng = random.Random(kind)
    if kind % 5 == 0:
        writer.write(os.urandom(rng.randint(1, 4000)))  # noise
    elif kind % 5 == 1:
        writer.write(client_c0c1()[: rng.randint(1, 1536)])  # truncated C0+C1
    elif kind % 5 == 2:
        writer.write(b"\x03" + bytes(1536))  # C0+C1 and then nothing
    elif kind % 5 == 3:
        writer.write(client_c0c1() + bytes(1536) + os.urandom(500))  # handshake then noise
    else:
        pass  # silence
    if kind % 2:
        writer.close()  # some hang up themselves, the others wait for the server
    async with asyncio.timeout(5):
        while await reader.read(65536):
            pass
    writer.close()


def test_garbage_connections_do_not_disturb_a_good_publish_and_play():
    async def scenario():
        async with running_server(handshake_timeout=1.0, connect_timeout=1.0) as server:
            url = f"rtmp://127.0.0.1:{server.port}/app/stream"
            garbage = [asyncio.create_task(garbage_client(server.port, kind)) for kind in range(20)]
            publisher = await start(*publish_command(url, 3))
            await wait_live(server.registry)
            code, streams = await probe(url)
            assert code == 0 and summary(streams) == EXPECTED
            await asyncio.gather(*garbage)  # every garbage connection was hung up on
            code, _, err = await finish(publisher)
            assert code == 0, err
            assert server.sessions == []

    run(scenario)
