"""Django's own middleware (security, sessions, common, CSRF, authentication, messages, clickjacking)
run in the event loop under ASGI, instead of one thread hop per hook.

Django's ``MiddlewareMixin`` calls every ``process_request``/``process_response`` of an async
request through ``sync_to_async``: about fifteen hops to a worker thread per request, most of an
API call's cost under Daphne (py-spy: thread pool hand-offs, not the hooks themselves). These hooks
only read headers and cookies and set attributes, so they run inline here; the two that can touch
the database do so only in cases they can tell apart, and then still go to a thread: saving a
modified session, and storing messages (which may load the session).

The API paths (/v1, /rest-api: OME's token and WCS's Basic auth, checked by the views, no cookies)
skip the session, authentication, CSRF and messages middleware altogether: those serve the admin's
browser sessions, and cost an API call a fifth of its time (py-spy) for nothing.

Under a sync handler (the test client, management commands) each class behaves exactly as Django's.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.middleware import clickjacking, common, csrf, security

from streamhub.middleware import is_api_path


class InlineAsyncMixin:
    """``__acall__`` that runs the hooks in the event loop (Django's hops to a thread for each)."""

    # Browser-session middleware: passes API requests through untouched (see the module's docstring).
    skip_api_paths = False

    def response_needs_thread(self, request, response) -> bool:
        """Whether ``process_response`` may block (touch the database) for this request."""
        return False

    async def __acall__(self, request):
        if self.skip_api_paths and is_api_path(request.path_info):
            return await self.get_response(request)
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request, response):
                response = await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
            else:
                response = self.process_response(request, response)
        return response


class SecurityMiddleware(InlineAsyncMixin, security.SecurityMiddleware):
    pass


class SessionMiddleware(InlineAsyncMixin, sessions.SessionMiddleware):
    skip_api_paths = True

    # process_request only makes a lazy session store; process_response saves it when modified.
    def response_needs_thread(self, request, response) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(InlineAsyncMixin, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(InlineAsyncMixin, csrf.CsrfViewMiddleware):
    """CSRF checks read cookies, headers and the (already received) body: inline too, process_view
    included (Django would hop to a thread for it even for views exempt from CSRF, e.g. every API view).
    """

    skip_api_paths = True

    def __init__(self, get_response):
        super().__init__(get_response)
        if self.async_mode:
            check = self.process_view

            async def process_view(request, callback, callback_args, callback_kwargs):
                if is_api_path(request.path_info):
                    return None
                return check(request, callback, callback_args, callback_kwargs)

            self.process_view = process_view


class AuthenticationMiddleware(InlineAsyncMixin, auth.AuthenticationMiddleware):
    # Only sets lazy request.user / request.auser: the user is loaded where it is used.
    skip_api_paths = True


class MessageMiddleware(InlineAsyncMixin, messages.MessageMiddleware):
    # Storing messages may read and write the session (the database): a thread then, inline otherwise.
    skip_api_paths = True

    def response_needs_thread(self, request, response) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class XFrameOptionsMiddleware(InlineAsyncMixin, clickjacking.XFrameOptionsMiddleware):
    pass


# What the API server's handler (streamhub/asgi_handler.py) loads instead of Django's classes named in
# MIDDLEWARE (named there as they are, for Django's system checks and for the sync test client).
INLINE_CLASSES = {
    "django.middleware.security.SecurityMiddleware": SecurityMiddleware,
    "django.contrib.sessions.middleware.SessionMiddleware": SessionMiddleware,
    "django.middleware.common.CommonMiddleware": CommonMiddleware,
    "django.middleware.csrf.CsrfViewMiddleware": CsrfViewMiddleware,
    "django.contrib.auth.middleware.AuthenticationMiddleware": AuthenticationMiddleware,
    "django.contrib.messages.middleware.MessageMiddleware": MessageMiddleware,
    "django.middleware.clickjacking.XFrameOptionsMiddleware": XFrameOptionsMiddleware,
}


def inline_middleware_paths(paths: list[str]) -> list[str]:
    """MIDDLEWARE with Django's classes replaced by the ones here."""
    return [f"{__name__}.{INLINE_CLASSES[path].__name__}" if path in INLINE_CLASSES else path for path in paths]
