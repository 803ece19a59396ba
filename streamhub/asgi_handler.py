"""Django's ASGI handler with its per-request worker thread taken from a pool of kept threads.

Django runs each request's sync code (signals, a sync view such as every DRF view) on one thread of
its own: a new thread started for the request and joined after it. Under load that start and join
was a large share of a request's cost (py-spy), and the thread's database connection died with it,
so every request also opened a new one (CONN_MAX_AGE could not keep it). Here each request still
gets a thread of its own (a view that blocks holds up no other request), but a kept one: a
single-thread executor from a pool, given back when the request ends, whose database connection
lives on for the next request (up to CONN_MAX_AGE).

At most API_REQUEST_SLOTS requests of a process run at once (`RequestSlots`); the others wait their
turn in arrival order. With a thread per request and every one in flight sharing the GIL, 25 concurrent
requests per process each took 25 times longer and the slowest far longer still (the GIL is not handed
round fairly): bench/api_throughput.py at 50 connections, p99 107–164 ms with every request at once
against 67–78 ms with two at a time, and 15–25 % less CPU per request. A request that holds its slot
longer than API_REQUEST_SLOT_HOLD (it waits on something: the engine, a slow client's body) gives it up
to the next one and runs on beside it, so a blocking view still holds up no other request for long.

A sync view's answer takes one hop to the request's thread, not three: Django hands the view to it,
then the response's ``render()`` (every DRF answer renders late), then, once the answer is sent, its
``close()`` (request_finished: the thread's database connections checked, closed if obsolete). Each
hop cost an API call about as much as its own work (bench/api_throughput.py, CPU per request, issue
#19). Here the view's hop renders the response too and, on the API's paths (whose middleware touch no
database: streamhub/inline_middleware.py), closes it before it is sent.

It also loads Django's middleware in their event-loop versions (streamhub/inline_middleware.py).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from asgiref.sync import ThreadSensitiveContext, iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.handlers.asgi import ASGIHandler, RequestAborted, get_script_prefix
from django.db import close_old_connections, reset_queries
from django.http import HttpResponseBase
from django.urls import set_script_prefix

from streamhub.inline_middleware import inline_middleware_paths
from streamhub.middleware import is_api_path

# Idle threads kept for the next requests; beyond (a burst of concurrent requests) a request's thread
# ends with it, as in Django.
MAX_IDLE_THREADS = 64
# Views whose wrapping (make_view_atomic) is kept: the URL patterns' (a few hundred).
MAX_KEPT_VIEWS = 4096


class _RequestThread(ThreadPoolExecutor):
    """One thread; knows whether work is still queued or running on it (a request whose client went
    away leaves its sync view running: that thread is not handed to the next request)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="django-request")
        self.pending = 0
        self._lock = threading.Lock()  # submit runs on the event loop, _done on the thread

    def submit(self, fn, /, *args, **kwargs):
        with self._lock:
            self.pending += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future) -> None:
        with self._lock:
            self.pending -= 1


class RequestSlots:
    """``size`` slots for running requests, taken in arrival order; a slot held longer than ``hold``
    seconds is given back early (its request runs on, no longer counted)."""

    def __init__(self, size: int, hold: float) -> None:
        self.size = size
        self.hold = hold
        self._semaphore: asyncio.Semaphore | None = None  # made on the serving loop, at the first request
        self.given_back_early = 0

    @asynccontextmanager
    async def taken(self):
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.size)
        semaphore = self._semaphore
        await semaphore.acquire()
        held = True

        def give_back(early: bool) -> None:
            nonlocal held
            if held:
                held = False
                semaphore.release()
                self.given_back_early += early

        timer = asyncio.get_running_loop().call_later(self.hold, give_back, True)
        try:
            yield
        finally:
            timer.cancel()
            give_back(False)

    @property
    def free(self) -> int:
        return self.size if self._semaphore is None else self._semaphore._value


class PooledThreadASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self._idle: list[_RequestThread] = []
        self._views_in_one_hop: dict = {}  # URL pattern callback -> what make_view_atomic made of it
        self.slots = RequestSlots(settings.API_REQUEST_SLOTS, settings.API_REQUEST_SLOT_HOLD)
        # request_started's sync receivers cost every request a hop to its thread before anything else.
        # Closing obsolete or broken connections also happens at request_finished (which arms the health
        # check of the next use); the query log is only kept with DEBUG.
        signals.request_started.disconnect(close_old_connections)
        if not settings.DEBUG:
            signals.request_started.disconnect(reset_queries)

    def load_middleware(self, is_async=False):
        """Django's middleware of MIDDLEWARE as their event-loop versions (streamhub/inline_middleware.py)."""
        named = settings.MIDDLEWARE
        settings.MIDDLEWARE = inline_middleware_paths(named)
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = named

    def make_view_atomic(self, view):
        """`view_in_one_hop` of the view, made once per view (Django makes it again for every request)."""
        try:
            return self._views_in_one_hop[view]
        except KeyError:
            made = self._views_in_one_hop[view] = self.view_in_one_hop(view)
            if len(self._views_in_one_hop) > MAX_KEPT_VIEWS:  # (views made on the fly: keep none for long)
                self._views_in_one_hop.clear()
            return made
        except TypeError:  # an unhashable callable
            return self.view_in_one_hop(view)

    def view_in_one_hop(self, view):
        """Django's ``make_view_atomic``, with a sync view's response rendered and (API paths) closed in the
        view's own hop (without template response middleware, which runs between the view and the
        rendering: none here)."""
        view = super().make_view_atomic(view)
        if iscoroutinefunction(view) or self._template_response_middleware:
            return view
        handler_class = type(self)

        @functools.wraps(view)
        def view_render_close(request, *args, **kwargs):
            response = view(request, *args, **kwargs)
            if callable(getattr(response, "render", None)):
                response = response.render()  # (an error here is the view's, as an error of Django's render)
                rendered = response

                # What Django's handler calls next: awaited as it is, instead of run on the thread again.
                async def render():
                    return rendered

                response.render = render
            if isinstance(response, HttpResponseBase) and not response.streaming and is_api_path(request.path_info):
                response._handler_class = handler_class  # (what request_finished names as its sender)
                response.close()
                response.closed_on_view_thread = True  # (see handle)
            return response

        return sync_to_async(view_render_close, thread_sensitive=True)

    async def handle(self, scope, receive, send):
        """Django 5.2's ``ASGIHandler.handle`` but for its last step: a response the view's hop closed
        already (``closed_on_view_thread``) is not closed again in a hop of its own."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        await signals.request_started.asend(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request(request, send):
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client went away while it was sent
            return response

        # A disconnect while the response is made cancels it (listen_for_disconnect first: see Django's).
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            if not getattr(response, "closed_on_view_thread", False):
                await sync_to_async(response.close)()
        body_file.close()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        async with self.slots.taken():
            await self._handle_on_kept_thread(scope, receive, send)

    async def _handle_on_kept_thread(self, scope, receive, send):
        executor = self._idle.pop() if self._idle else _RequestThread()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        except BaseException:
            # Whatever the thread was doing may still run (a cancelled request): never hand it on.
            executor.shutdown(wait=False)
            raise
        if executor.pending == 0 and len(self._idle) < MAX_IDLE_THREADS:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)
