"""Answers whose body is a file (HLS segments, LL-HLS parts): sent by the kernel with sendfile, never read
into the engine's memory, and under the media port's send timeout.

`file_response` answers a request with an open file: the headers (Content-Length from the file's size,
the CORS header, since a prepared answer passes `cors_middleware` untouched), then the body in pieces
of `SENDFILE_PIECE` bytes with ``loop.sendfile`` (asyncio falls back to reads and writes where the
transport cannot, e.g. TLS, or for an in-memory file). A client that takes none of a piece within
``send_timeout`` seconds is dropped, as `limits` drops one that stops reading a buffered answer.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from typing import BinaryIO

from aiohttp import web

# Sent per sendfile call: a client reading at 1 Mb/s takes one in 2 s, well within the send timeout.
SENDFILE_PIECE = 256 * 1024


def file_size(file: BinaryIO) -> int:
    """The size of an open file (a real one or an in-memory one)."""
    try:
        return os.fstat(file.fileno()).st_size
    except (AttributeError, OSError, ValueError):  # (io.BytesIO has no file descriptor)
        position = file.tell()
        size = file.seek(0, os.SEEK_END)
        file.seek(position)
        return size


async def file_response(
    request: web.Request,
    file: BinaryIO,
    *,
    content_type: str,
    headers: Mapping[str, str],
    send_timeout: float,
    on_send_timeout: Callable[[], None] | None = None,
) -> web.StreamResponse:
    """Answer ``request`` with the whole of ``file`` (closed here); ``headers`` go with it (CORS included).
    ``on_send_timeout`` is called when a client is dropped for not reading."""
    try:
        size = file_size(file)
        response = web.StreamResponse(headers=headers)
        response.content_type = content_type
        response.content_length = size
        try:
            await response.prepare(request)
        except ConnectionError:  # the client went away before its headers could be sent (wrk's end, say)
            return response
        if request.method == "HEAD" or size == 0:
            await response.write_eof()
            return response
        loop = asyncio.get_running_loop()
        transport = request.transport
        offset = 0
        while offset < size:
            if transport is None or transport.is_closing():
                return response  # the client is gone (aiohttp sees it so)
            count = min(SENDFILE_PIECE, size - offset)
            try:
                async with asyncio.timeout(send_timeout):
                    sent = await loop.sendfile(transport, file, offset, count)
            except TimeoutError:
                if on_send_timeout is not None:
                    on_send_timeout()
                transport.abort()
                return response
            except ConnectionError:
                transport.abort()
                return response
            if sent <= 0:  # (the file shrank: cannot happen to a sealed segment)
                transport.abort()
                return response
            offset += sent
        await response.write_eof()
        return response
    finally:
        file.close()
