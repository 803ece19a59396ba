"""streamhub.asgi_handler: an API call to a sync view (every DRF view) takes one hop to the request's
thread, which runs the view, renders its response and closes it (request_finished, once), where Django
takes three; and answers as before."""

from __future__ import annotations

import ast
import asyncio
import difflib
import inspect
import textwrap
import threading

from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished

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


def test_an_api_answer_takes_one_hop_to_the_request_thread():
    handler = PooledThreadASGIHandler()
    finished: list[str] = []

    def on_finished(sender, **kwargs):
        finished.append(threading.current_thread().name)

    request_finished.connect(on_finished)
    thread = _RequestThread()
    handed: list[str] = []
    submit = thread.submit

    def counted(fn, /, *args, **kwargs):
        handed.append(getattr(fn, "__name__", repr(fn)))
        return submit(fn, *args, **kwargs)

    thread.submit = counted
    handler._idle.append(thread)
    # OME's answer to a path it has no API for: a DRF view and its rendered error envelope, no database.
    try:
        status, body = request(handler, "/v1/nothing-here", [(b"authorization", OME_AUTH.encode())])
    finally:
        request_finished.disconnect(on_finished)
        thread.shutdown()
    assert (status, body) == (404, b'{"statusCode":404,"message":"[HTTP] Controller not found (404)"}')
    assert len(handed) == 1, handed  # the view, its rendering and request_finished: Django takes 3 hops
    assert len(finished) == 1 and finished[0].startswith("django-request"), finished


def test_handle_is_djangos_but_for_the_close_of_a_closed_response():
    """A Django upgrade that changes ASGIHandler.handle must be carried over (streamhub/asgi_handler.py)."""

    def statements(cls) -> list[str]:
        function = ast.parse(textwrap.dedent(inspect.getsource(cls.handle))).body[0]
        function.body = function.body[1:]  # (the docstring)
        return ast.unparse(function).splitlines()

    changed = [
        line
        for line in difflib.unified_diff(statements(ASGIHandler), statements(PooledThreadASGIHandler), lineterm="", n=0)
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert changed == [
        "-        await sync_to_async(response.close)()",
        "+        if not getattr(response, 'closed_on_view_thread', False):",
        "+            await sync_to_async(response.close)()",
    ]


def test_a_view_is_wrapped_once():
    handler = PooledThreadASGIHandler()

    def view(request):
        raise AssertionError("not called")

    assert handler.make_view_atomic(view) is handler.make_view_atomic(view)
