"""WhiteNoise (static files) as an async-capable middleware, and the ASGI limit on API request bodies.

WhiteNoise's own middleware is sync-only, and one sync-only middleware makes Django run the whole
request in a thread: an async view (WCS v3 awaiting its job) would hold that thread while it
waits. Static files are still served by WhiteNoise, from a thread; everything else passes through.
"""

from __future__ import annotations

import json

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware as SyncWhiteNoiseMiddleware


class WhiteNoiseMiddleware(SyncWhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, *args, **kwargs) -> None:
        super().__init__(get_response, *args, **kwargs)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return super().__call__(request)

    def _static_file(self, request):
        return self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)

    async def _acall(self, request):
        if self.autorefresh:  # looks at the file system (development)
            static_file = await sync_to_async(self._static_file, thread_sensitive=False)(request)
        else:
            static_file = self._static_file(request)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)


# -- request body limit (ASGI) ---------------------------------------------------------------------

API_PREFIXES = ("/v1", "/rest-api")
_UNDER_API_PREFIXES = tuple(prefix + "/" for prefix in API_PREFIXES)


def is_api_path(path: str) -> bool:
    # (asked several times per request: one startswith, not a generator over the prefixes)
    return path.startswith(_UNDER_API_PREFIXES) or path in API_PREFIXES


def too_large_response(path: str, limit: int) -> tuple[int, bytes]:
    """The 413 of the API dialect ``path`` belongs to: OME's envelope on /v1, WCS's error body on /rest-api."""
    text = f"Request body is larger than {limit} bytes"
    if path.startswith("/v1"):
        from apps.api_ome.envelope import error_envelope

        body = error_envelope(413, text)
    else:
        from apps.api_wcs.errors import error_body

        body = error_body(413, text, path)
    return 413, json.dumps(body).encode()


class RequestBodyLimitMiddleware:
    """ASGI middleware: a /v1 or /rest-api request whose body is larger than ``API_MAX_BODY_BYTES``
    is answered 413, in the dialect's format, before the application reads any of it: at once when
    Content-Length says so, else (chunked bodies) as soon as the bytes received pass the limit. A
    body within the limit is handed on whole, as Django reads it anyway."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not is_api_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        from django.conf import settings

        limit = settings.API_MAX_BODY_BYTES
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _answer(send, *too_large_response(scope["path"], limit))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its body was complete: nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _answer(send, *too_large_response(scope["path"], limit))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later: the disconnect, when it comes

        await self.app(scope, replay, send)


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _answer(send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    # The unread rest of the body makes the connection unusable for another request.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
