"""The listening sockets of a media server process (RTMP, media HTTP): the public one, which the worker
processes of one machine share through SO_REUSEPORT, and the worker's own private one on loopback (where
its siblings and the jobs reach this process in particular)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

BACKLOG = 1024


async def open_listeners(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str,
    port: int,
    *,
    reuse_port: bool,
    private_address: tuple[str, int] | None,
) -> tuple[asyncio.Server, asyncio.Server | None]:
    """Listen on ``host:port`` (shared with other processes when ``reuse_port``) and, with
    ``private_address``, on that too. If the private port cannot be opened, the public one is closed
    again before the error goes on: a process never serves half its ports."""
    loop = asyncio.get_running_loop()
    public = await loop.create_server(
        protocol_factory, host, port, reuse_address=True, reuse_port=reuse_port or None, backlog=BACKLOG
    )
    if private_address is None:
        return public, None
    try:
        private = await loop.create_server(protocol_factory, *private_address, reuse_address=True, backlog=BACKLOG)
    except BaseException:
        public.close()
        raise
    return public, private
