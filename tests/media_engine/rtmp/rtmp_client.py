"""A minimal scripted RTMP client for the session tests, built on the engine's own protocol modules."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.registry import StreamRegistry
from media_engine.rtmp import amf0
from media_engine.rtmp.chunks import ChunkReader, ChunkWriter, Message, MessageType
from media_engine.rtmp.handshake import C0C1_SIZE, HANDSHAKE_SIZE, client_c0c1
from media_engine.rtmp.server import RtmpServer

DATA = Path(__file__).with_name("data")
FFMPEG_PUBLISH = DATA / "ffmpeg_publish.bin"
TIMEOUT = 5.0


def ffmpeg_publish_messages() -> list[Message]:
    """The chunk-stream messages of the recorded ffmpeg publish session (after C0/C1/C2)."""
    data = FFMPEG_PUBLISH.read_bytes()
    return ChunkReader().feed(data[C0C1_SIZE + HANDSHAKE_SIZE :])


@contextlib.asynccontextmanager
async def running_server(apps: tuple[str, ...] = ("app",), **options: Any) -> AsyncIterator[RtmpServer]:
    """An RtmpServer on a free loopback port with a static control plane of ``apps``."""
    control = StaticControlPlane([ApplicationConfig("default", app) for app in apps])
    server = RtmpServer(StreamRegistry(), control, port=0, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class RtmpTestClient:
    """Speaks just enough RTMP to script a publisher or a player; keeps every message it reads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.chunks_in = ChunkReader()
        self.chunks_out = ChunkWriter()
        self.received: list[Message] = []
        self._queue: list[Message] = []
        self._txn = 0.0
        self.bytes_read = 0

    @classmethod
    async def open(cls, port: int, handshake: bool = True, signed: bool = True) -> RtmpTestClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        if handshake:
            await client.handshake(signed)
        return client

    async def handshake(self, signed: bool = True) -> bytes:
        c0c1 = client_c0c1(signed=signed)
        self.writer.write(c0c1)
        s0s1s2 = await asyncio.wait_for(self.reader.readexactly(1 + 2 * HANDSHAKE_SIZE), TIMEOUT)
        self.writer.write(s0s1s2[1 : 1 + HANDSHAKE_SIZE])  # C2 echoes S1
        return c0c1 + s0s1s2

    def close(self) -> None:
        self.writer.transport.abort()

    # -- sending ---------------------------------------------------------------------------

    def send(self, csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes) -> None:
        self.writer.write(self.chunks_out.write(csid, type_id, stream_id, timestamp, payload))

    def command(self, name: str, *args: Any, stream_id: int = 0) -> float:
        self._txn += 1
        csid = 3 if stream_id == 0 else 8
        self.send(csid, MessageType.COMMAND_AMF0, stream_id, 0, amf0.encode(name, self._txn, *args))
        return self._txn

    # -- reading ---------------------------------------------------------------------------

    async def read_message(self, timeout: float = TIMEOUT) -> Message:
        async with asyncio.timeout(timeout):
            while not self._queue:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError("server closed the connection")
                self.bytes_read += len(data)
                self._queue.extend(self.chunks_in.feed(data))
        message = self._queue.pop(0)
        self.received.append(message)
        return message

    async def read_command(self, timeout: float = TIMEOUT) -> list[Any]:
        """The next command message's values (other messages are kept in ``received``)."""
        while True:
            message = await self.read_message(timeout)
            if message.type_id == MessageType.COMMAND_AMF0:
                return amf0.decode_all(message.payload)

    async def wait_closed(self, timeout: float = TIMEOUT) -> list[Message]:
        """Read until the server hangs up; the messages read meanwhile."""
        messages = []
        try:
            while True:
                messages.append(await self.read_message(timeout))
        except (EOFError, ConnectionError):
            return messages

    # -- NetConnection / NetStream ---------------------------------------------------------

    async def connect(self, app: str = "app", tc_url: str | None = None) -> list[Any]:
        tc_url = tc_url or f"rtmp://127.0.0.1/{app}"
        self.command("connect", {"app": app, "tcUrl": tc_url, "flashVer": "FMLE/3.0", "type": "nonprivate"})
        return await self.read_command()

    async def create_stream(self) -> int:
        self.command("createStream", None)
        reply = await self.read_command()
        assert reply[0] == "_result", reply
        return int(reply[3])

    async def publish(self, name: str, stream_id: int) -> dict[str, Any]:
        self.command("publish", None, name, "live", stream_id=stream_id)
        reply = await self.read_command()
        assert reply[0] == "onStatus", reply
        return reply[3]

    async def play(self, name: str, stream_id: int) -> dict[str, Any]:
        self.command("play", None, name, -2.0, stream_id=stream_id)
        reply = await self.read_command()
        assert reply[0] == "onStatus", reply
        return reply[3]

    async def start_publishing(self, name: str = "stream", app: str = "app") -> int:
        """connect + createStream + publish; the message stream id to send media on."""
        reply = await self.connect(app)
        assert reply[0] == "_result", reply
        stream_id = await self.create_stream()
        status = await self.publish(name, stream_id)
        assert status["code"] == "NetStream.Publish.Start", status
        return stream_id
