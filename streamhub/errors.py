"""The API server's answers to unknown URLs and unexpected errors, in each API's own format.

Django calls these (``handler404``/``handler500`` in ``streamhub.urls``) only with DEBUG off: an OME
client gets the OME envelope under ``/v1``, a WCS client the WCS error body under ``/rest-api`` (v2
and v3), everything else (admin, Swagger UI) Django's plain pages. Never a traceback or a route list.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from apps.api_ome.envelope import error_envelope
from apps.api_wcs.errors import error_body


def _dialect_error(request: HttpRequest, status: int, text: str) -> JsonResponse | None:
    path = request.path
    if path == "/v1" or path.startswith("/v1/"):
        return JsonResponse(error_envelope(status, text), status=status)
    if path == "/rest-api" or path.startswith("/rest-api/"):
        return JsonResponse(error_body(status, text, path), status=status)
    return None


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _dialect_error(request, 404, "Not Found") or defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    # The traceback goes to the log (django.request); the client learns nothing of the code.
    return _dialect_error(request, 500, "Internal Server Error") or defaults.server_error(request)
