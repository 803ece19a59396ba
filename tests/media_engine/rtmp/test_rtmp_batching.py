"""Batched reads of a publisher's socket: fewer wake-ups at a steady bitrate, nothing held back on a pause."""

from __future__ import annotations

import asyncio
import time

from media_engine.rtmp.batching import BATCH_SECONDS, ReadBatching


class Receiver(asyncio.Protocol):
    def __init__(self) -> None:
        self.reads: list[int] = []
        self.batching: ReadBatching | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.batching = ReadBatching.for_transport(transport, asyncio.get_running_loop(), time.monotonic)

    def data_received(self, data: bytes) -> None:
        self.reads.append(len(data))
        assert self.batching is not None
        self.batching.observe(len(data), time.monotonic())


def test_a_steady_publisher_is_read_in_batches_and_its_last_bytes_are_not_held_back() -> None:
    async def main() -> None:
        receiver = Receiver()
        server = await asyncio.get_running_loop().create_server(lambda: receiver, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            # 400 B every 2 ms (200 kB/s), as small writes: read as they come at first.
            async def send(seconds: float) -> int:
                sent, deadline = 0, time.monotonic() + seconds
                while time.monotonic() < deadline:
                    writer.write(b"x" * 400)
                    await writer.drain()
                    sent += 400
                    await asyncio.sleep(0.002)
                return sent

            sent = await send(1.5)
            assert receiver.batching is not None
            expected = 200_000 * BATCH_SECONDS
            assert expected / 3 < receiver.batching.low_water < expected * 3, receiver.batching.low_water
            reads_before, bytes_before = len(receiver.reads), sum(receiver.reads)
            sent += await send(1.0)
            await asyncio.sleep(0.05)
            batched_reads = len(receiver.reads) - reads_before
            batched_bytes = sum(receiver.reads) - bytes_before
            # Each read carries several writes (about BATCH_SECONDS worth), not one.
            assert batched_bytes / batched_reads >= 4 * 400, (batched_reads, batched_bytes)

            # The publisher pauses with less than the mark sent: those bytes still come, soon.
            writer.write(b"y" * 100)
            await writer.drain()
            sent += 100
            for _ in range(100):
                if sum(receiver.reads) == sent:
                    break
                await asyncio.sleep(0.01)
            assert sum(receiver.reads) == sent
            assert receiver.batching.low_water == 1

            receiver.batching.close()
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())
