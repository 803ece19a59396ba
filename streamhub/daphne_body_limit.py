"""The API body limit inside Daphne, where bodies arrive.

Daphne (Twisted) reads a request's whole body, into a temporary file and then into the ASGI
application's queue, before the application sees the request: an ASGI middleware alone cannot stop
a 50 MB body from being received and held. Installed by `streamhub.asgi` when Daphne serves it, this
answers a /v1 or /rest-api request 413 (in the dialect's format) as soon as its Content-Length says
it is too large, or, for chunked bodies, as soon as the bytes received pass the limit. The rest of
the body is read and thrown away for a few seconds, so that the client can read the answer, then the
connection is closed. `streamhub.middleware.RequestBodyLimitMiddleware` stays as the ASGI-level check
for other servers.
"""

from __future__ import annotations

import logging

from django.conf import settings

from streamhub.middleware import is_api_path, too_large_response

logger = logging.getLogger(__name__)

# How long a refused request's remaining body is read and dropped before the connection is closed.
LINGER_SECONDS = 5.0


def _response_bytes(path: str, limit: int) -> bytes:
    status, body = too_large_response(path, limit)
    head = (
        f"HTTP/1.1 {status} Request Entity Too Large\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return head + body


def install() -> bool:
    """Patch Daphne's request class (once); False when Daphne is not installed."""
    try:
        from daphne.http_protocol import WebRequest
        from twisted.internet import reactor
    except ImportError:
        return False
    if getattr(WebRequest, "_streamhub_body_limit", False):
        return True
    got_length, handle_chunk, process = WebRequest.gotLength, WebRequest.handleContentChunk, WebRequest.process

    def refuse(request) -> None:
        request._streamhub_refused = True
        transport = request.channel.transport
        transport.write(_response_bytes(request._streamhub_path, settings.API_MAX_BODY_BYTES))
        logger.info("refused a request body over %d bytes on %s", settings.API_MAX_BODY_BYTES, request._streamhub_path)
        # Keep reading (and dropping) for a while: closing with unread data would reset the
        # connection, and the client might lose the answer.
        reactor.callLater(LINGER_SECONDS, transport.loseConnection)

    def limited_got_length(self, length):
        raw = getattr(self.channel, "_path", b"") or b""
        self._streamhub_path = raw.split(b"?", 1)[0].decode("latin-1")
        self._streamhub_limited = is_api_path(self._streamhub_path)
        self._streamhub_received = 0
        self._streamhub_refused = False
        if self._streamhub_limited and length is not None and length > settings.API_MAX_BODY_BYTES:
            got_length(self, 0)  # no buffer sized for the declared body
            refuse(self)
            return
        got_length(self, length)

    def limited_handle_chunk(self, data):
        if getattr(self, "_streamhub_refused", False):
            return
        if getattr(self, "_streamhub_limited", False):
            self._streamhub_received += len(data)
            if self._streamhub_received > settings.API_MAX_BODY_BYTES:
                refuse(self)
                return
        handle_chunk(self, data)

    def limited_process(self):
        if getattr(self, "_streamhub_refused", False):
            return None  # answered already; the connection closes
        return process(self)

    WebRequest.gotLength = limited_got_length
    WebRequest.handleContentChunk = limited_handle_chunk
    WebRequest.process = limited_process
    WebRequest._streamhub_body_limit = True
    return True
