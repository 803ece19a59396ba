"""WCS's error answers: the status code of the method table, with its text.

WCS answers errors with the status of its method table ("404 - Stream not found"). Its documents
don't show the error body; StreamHub sends the JSON a Java (Spring) server such as WCS sends, with
the table's text as ``message``: ``{"timestamp": ms, "status": 404, "error": "Not Found",
"message": "Stream not found", "path": "/rest-api/stream/find"}``.
Success answers are ``200`` with the method's JSON, or an empty body for ``void`` methods.
"""

from __future__ import annotations

import time
from http import HTTPStatus

from rest_framework import exceptions
from rest_framework.response import Response

from apps.security.parsers import JsonTooDeep


class WcsError(exceptions.APIException):
    """An error answered as WCS does, e.g. ``WcsError(404, "Stream not found")``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(detail=message)
        self.status_code = status
        self.message = message


def not_found(what: str) -> WcsError:
    return WcsError(404, f"{what} not found")


def error_body(status: int, message: str, path: str) -> dict:
    return {
        "timestamp": int(time.time() * 1000),
        "status": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
        "path": path,
    }


def _message(exc: exceptions.APIException) -> str:
    if isinstance(exc, WcsError):
        return exc.message
    if isinstance(exc, exceptions.ValidationError):
        return "Bad request: " + describe(exc.detail)
    if isinstance(exc, JsonTooDeep):
        return f"Bad request: {exc.detail}"
    if isinstance(exc, exceptions.ParseError):
        return "Bad request: the body is not JSON"
    return str(exc.detail)


def describe(detail, prefix: str = "") -> str:
    """DRF validation errors as one line: ``field: reason; other.field: reason``."""
    if isinstance(detail, dict):
        return "; ".join(describe(value, f"{prefix}{key}." if prefix or key else "") for key, value in detail.items())
    if isinstance(detail, list):
        return "; ".join(describe(item, prefix) for item in detail)
    field = prefix.rstrip(".")
    return f"{field}: {detail}" if field and field != "non_field_errors" else str(detail)


def wcs_exception_handler(exc, context):
    if not isinstance(exc, exceptions.APIException):
        return None  # a real bug: Django's 500
    request = context["request"]
    status = exc.status_code
    response = Response(error_body(status, _message(exc), request.path), status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="WCS REST API"'
    return response
