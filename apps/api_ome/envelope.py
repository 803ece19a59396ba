"""OME's response envelope, its errors and its multi-status rule: the one place they are built.

Every /v1 answer is ``{"statusCode", "message", "response"}``; an error's message reads
``[HTTP] <text> (<status>)``; a request that creates several items answers a JSON array of
envelopes, with the items' common status or ``207 Multi-Status`` when they differ.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

OME_REALM = 'Basic realm="OvenMediaEngine"'
_MISSING = object()


class OmeError(exceptions.APIException):
    """An error answered in the OME envelope, e.g. ``OmeError(404, "Could not find the application: [a/b]")``."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(detail=text)
        self.status_code = status
        self.text = text


def error_message(status: int, text: str) -> str:
    return f"[HTTP] {text} ({status})"


def envelope(status: int = 200, response=_MISSING, message: str | None = None) -> dict:
    body: dict = {"statusCode": status, "message": message or HTTPStatus(status).phrase}
    if response is not _MISSING:
        body["response"] = response
    return body


def ok(response=_MISSING) -> Response:
    return Response(envelope(200, response))


def error_envelope(status: int, text: str) -> dict:
    return envelope(status, message=error_message(status, text))


class MultipleStatus:
    """Collects one envelope per requested item and answers them as OME does."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, item: dict) -> None:
        self.items.append(item)

    @property
    def status(self) -> int:
        codes = {item["statusCode"] for item in self.items}
        if not codes:
            return 200
        return codes.pop() if len(codes) == 1 else 207

    def response(self) -> Response:
        return Response(self.items, status=self.status)


def _text_of(exc: exceptions.APIException) -> str:
    if isinstance(exc, OmeError):
        return exc.text
    if isinstance(exc, exceptions.NotAuthenticated):
        return "Authorization header is required to call API"
    if isinstance(exc, exceptions.ParseError):
        return f"Invalid request body: {exc.detail}"
    if isinstance(exc, exceptions.MethodNotAllowed):
        return "Method not allowed"
    detail = exc.detail
    if isinstance(detail, list | dict):
        from apps.hosting.ome_config import describe_errors

        return describe_errors(detail)
    return str(detail)


def ome_exception_handler(exc, context):
    """DRF exception handler for /v1: every error in the envelope, 401s with OME's realm."""
    response = drf_exception_handler(exc, context)
    # Django's own 404 and 403 (an unknown ?format=, say), which DRF answers as its NotFound and PermissionDenied.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if response is None:
        # An unexpected error: the reason goes to the log, the client gets OME's plain 500.
        logger.exception("OME API request failed", exc_info=exc)
        return Response(error_envelope(500, "Internal Server Error"), status=500)
    status = response.status_code
    response.data = error_envelope(status, _text_of(exc))
    if status == 401:
        response["WWW-Authenticate"] = OME_REALM
    return response
