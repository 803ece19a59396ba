"""CORS for the WCS API (/rest-api/..., v2 and v3) as WCS configures it (``rest_access_control_*``
and ``rest_access_control_headers``): allowed origins, headers and methods, credentials, and the
headers browser code may read (v3's ``Location`` and ``Preference-Applied``), from settings
(``WCS_CORS_*``); preflight ``OPTIONS`` answered here, before authentication (a browser sends no
credentials in a preflight)."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpResponse
from django.utils.cache import patch_vary_headers

PREFIX = "/rest-api"


def is_preflight(request) -> bool:
    return request.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META


def allowed_origin(origin: str) -> str | None:
    """The Access-Control-Allow-Origin for a request from ``origin`` (None: not allowed)."""
    configured = [item.strip() for item in settings.WCS_CORS_ALLOW_ORIGIN.split(",") if item.strip()]
    if "*" in configured:
        # A browser refuses "*" on a credentialed request: name the caller's origin instead.
        return origin if settings.WCS_CORS_ALLOW_CREDENTIALS and origin else "*"
    return origin if origin in configured else None


class WcsCorsMiddleware:
    # Async-capable too: WCS v3 views await their jobs without a thread (see streamhub/middleware.py).
    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        if not request.path.startswith(PREFIX):
            return self.get_response(request)
        response = HttpResponse(status=200) if is_preflight(request) else self.get_response(request)
        return self.allow(request, response)

    async def _acall(self, request):
        if not request.path.startswith(PREFIX):
            return await self.get_response(request)
        response = HttpResponse(status=200) if is_preflight(request) else await self.get_response(request)
        return self.allow(request, response)

    @staticmethod
    def allow(request, response):
        origin = allowed_origin(request.headers.get("Origin", ""))
        if origin != "*":
            patch_vary_headers(response, ["Origin"])  # the answer depends on the caller's origin
        if origin is None:
            return response
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Headers"] = settings.WCS_CORS_ALLOW_HEADERS
        response["Access-Control-Allow-Methods"] = settings.WCS_CORS_ALLOW_METHODS
        if settings.WCS_CORS_EXPOSE_HEADERS:
            response["Access-Control-Expose-Headers"] = settings.WCS_CORS_EXPOSE_HEADERS
        if settings.WCS_CORS_ALLOW_CREDENTIALS:
            response["Access-Control-Allow-Credentials"] = "true"
        return response
