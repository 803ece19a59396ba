"""CORS for the WCS API (/rest-api/...) as WCS configures it: allowed origin, headers and methods
from settings (``WCS_CORS_ALLOW_ORIGIN``, ``WCS_CORS_ALLOW_HEADERS``, ``WCS_CORS_ALLOW_METHODS``),
preflight ``OPTIONS`` answered here."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse

PREFIX = "/rest-api"


class WcsCorsMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(PREFIX):
            return self.get_response(request)
        if request.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META:
            response = HttpResponse(status=200)
        else:
            response = self.get_response(request)
        response["Access-Control-Allow-Origin"] = settings.WCS_CORS_ALLOW_ORIGIN
        response["Access-Control-Allow-Headers"] = settings.WCS_CORS_ALLOW_HEADERS
        response["Access-Control-Allow-Methods"] = settings.WCS_CORS_ALLOW_METHODS
        return response
