"""Re-record ffmpeg_publish.bin: every byte ffmpeg sends while publishing 2 s of 160x120 test video.

Run from the repository root: ``.venv/bin/python tests/media_engine/rtmp/data/record_ffmpeg_publish.py``.
A recording proxy sits between ffmpeg and a real `RtmpServer`, so ffmpeg gets genuine answers and
the file holds the client side of a complete session: C0, C1, C2, then the chunk stream.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT))

from media_engine.control import ApplicationConfig, StaticControlPlane  # noqa: E402
from media_engine.registry import StreamRegistry  # noqa: E402
from media_engine.rtmp.server import RtmpServer  # noqa: E402

OUTPUT = Path(__file__).with_name("ffmpeg_publish.bin")


async def record() -> bytes:
    server = RtmpServer(StreamRegistry(), StaticControlPlane([ApplicationConfig("default", "app")]), port=0)
    await server.start()
    recorded = bytearray()
    done = asyncio.Event()

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bool) -> None:
        try:
            while data := await src.read(65536):
                if record:
                    recorded.extend(data)
                dst.write(data)
                await dst.drain()
        finally:
            dst.close()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", server.port)
        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False), return_exceptions=True)
        done.set()

    proxy = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-loglevel", "error",
        "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "25", "-crf", "10",
        "-c:a", "aac", "-b:a", "32k", "-t", "2",
        "-f", "flv", f"rtmp://127.0.0.1:{port}/app/stream",
    )  # fmt: skip
    assert await process.wait() == 0, "ffmpeg failed"
    await asyncio.wait_for(done.wait(), 5)
    proxy.close()
    await server.stop()
    return bytes(recorded)


if __name__ == "__main__":
    data = asyncio.run(record())
    OUTPUT.write_bytes(data)
    print(f"wrote {len(data)} bytes to {OUTPUT}")
