"""CORS for the WCS API (/rest-api/...) as WCS configures it: allowed origin, headers and methods
from settings (``WCS_CORS_ALLOW_ORIGIN``, ``WCS_CORS_ALLOW_HEADERS``, ``WCS_CORS_ALLOW_METHODS``),
preflight ``OPTIONS`` answered here."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpResponse

PREFIX = "/rest-api"


def is_preflight(request) -> bool:
    return request.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META


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
        return self.allow(response)

    async def _acall(self, request):
        if not request.path.startswith(PREFIX):
            return await self.get_response(request)
        response = HttpResponse(status=200) if is_preflight(request) else await self.get_response(request)
        return self.allow(response)

    @staticmethod
    def allow(response):
        response["Access-Control-Allow-Origin"] = settings.WCS_CORS_ALLOW_ORIGIN
        response["Access-Control-Allow-Headers"] = settings.WCS_CORS_ALLOW_HEADERS
        response["Access-Control-Allow-Methods"] = settings.WCS_CORS_ALLOW_METHODS
        return response
