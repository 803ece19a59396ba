"""streamhub.asgi_handler: a DRF view's answer is rendered on the view's thread in the same hop (Django
hands ``render()`` to the request's thread again otherwise), and answers as before."""

from __future__ import annotations

import asyncio

from streamhub.asgi_handler import PooledThreadASGIHandler, _RequestThread
from tests.conftest import OME_AUTH


def request(handler: PooledThreadASGIHandler, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict] = []
    bodies = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if bodies:
            return bodies.pop()
        await asyncio.sleep(60)  # (no disconnect: Django cancels this once it has answered)

    async def send(message):
        sent.append(message)

    asyncio.run(handler(scope, receive, send))
    return sent[0]["status"], b"".join(message.get("body", b"") for message in sent[1:])


def test_a_drf_answer_takes_one_hop_to_the_request_thread_and_one_to_close():
    handler = PooledThreadASGIHandler()
    thread = _RequestThread()
    handed: list[str] = []
    submit = thread.submit

    def counted(fn, /, *args, **kwargs):
        handed.append(getattr(fn, "__name__", repr(fn)))
        return submit(fn, *args, **kwargs)

    thread.submit = counted
    handler._idle.append(thread)
    # OME's answer to a path it has no API for: a DRF view and its rendered error envelope, no database.
    status, body = request(handler, "/v1/nothing-here", [(b"authorization", OME_AUTH.encode())])
    assert (status, body) == (404, b'{"statusCode":404,"message":"[HTTP] Controller not found (404)"}')
    # The view and its rendering in one, then closing the response (request_finished): Django takes 3.
    assert len(handed) == 2, handed
    thread.shutdown()
