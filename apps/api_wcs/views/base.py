"""The base of every WCS v2 method: POST with a JSON body, validated by a serializer, answered by a
handler; one route per method of the WCS table (`wcs_method`)."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api_wcs.authentication import WcsAuthRequired, WcsBasicAuthentication
from apps.api_wcs.errors import WcsError, wcs_exception_handler
from apps.hosting.models import Application
from apps.security.parsers import DepthLimitedJSONParser
from streamhub.rendered_once import JSONRenderer

Handler = Callable[[dict], object]


class AnyContentTypeJsonParser(DepthLimitedJSONParser):
    """WCS clients send JSON, not always with the right Content-Type."""

    media_type = "*/*"


class EmptyBody(serializers.Serializer):
    """Methods without parameters (WCS's ``void``): any JSON object, or no body at all."""


class MediaSessionId(serializers.Serializer):
    mediaSessionId = serializers.CharField()


class WcsView(APIView):
    authentication_classes = [WcsBasicAuthentication]
    permission_classes = [WcsAuthRequired]
    renderer_classes = [JSONRenderer]  # DRF's, rendering a shared cached answer once (find_all)
    parser_classes = [DepthLimitedJSONParser, AnyContentTypeJsonParser]
    request_serializer: type[serializers.Serializer] = EmptyBody
    handler: Handler

    def get_exception_handler(self):
        return wcs_exception_handler

    def post(self, request, *args, **kwargs):
        data = request.data if request.data not in (None, "") else {}
        if not isinstance(data, dict):
            raise WcsError(400, "Bad request: the body must be a JSON object")
        return self.answer(request, data)

    def answer(self, request, data: dict) -> Response:
        set_caller_host(request)
        if self.request_serializer is EmptyBody:
            parameters = {}  # what EmptyBody validates any JSON object to (post checks it is one)
        else:
            serializer = self.request_serializer(data=data)
            serializer.is_valid(raise_exception=True)
            parameters = dict(serializer.validated_data)
        result = type(self).handler(parameters)
        if result is None:
            return Response(status=200)
        return Response(result)


@dataclass(frozen=True)
class Method:
    group: str  # "stream", "push", "pull/rtmp"...
    name: str  # "find_all"
    handler: Handler
    request: type[serializers.Serializer] = EmptyBody
    response: object = None  # a serializer (class or instance) for the schema; None: empty body
    summary: str = ""
    errors: tuple[tuple[int, str], ...] = ()
    # WCS v3 runs it as an asynchronous job in a worker (apps/api_wcs_v3/operations.py lists the
    # long methods that also wait for what they start).
    runs_as_job: bool = False
    # Also answered to GET (no body): the read-only methods the WCS OpenAPI listing shows as GET.
    allows_get: bool = False

    @property
    def route(self) -> str:
        return f"{self.group}/{self.name}"


def wcs_method(method: Method):
    """The URL pattern of one WCS method (a WcsView subclass documented for the OpenAPI schema)."""
    responses = {200: method.response or OpenApiResponse(description="Done (empty body)")}
    for status, text in method.errors:
        responses[status] = OpenApiResponse(description=text)

    def post(self, request, *args, **kwargs):  # its own function: the schema decorator marks it
        return WcsView.post(self, request, *args, **kwargs)

    view = type(
        "Wcs_" + method.route.replace("/", "_"),
        (WcsView,),
        {"request_serializer": method.request, "handler": staticmethod(method.handler)},
    )
    tags = [f"WCS: {method.group.split('/')[0]}"]
    operation_id = "wcs_" + method.route.replace("/", "_")
    view.post = extend_schema(
        tags=tags, summary=method.summary, operation_id=operation_id, request=method.request, responses=responses
    )(post)
    if method.allows_get:

        def get(self, request, *args, **kwargs):  # the answer of a POST without a body
            return self.answer(request, {})

        view.get = extend_schema(
            tags=tags, summary=method.summary, operation_id=operation_id + "_get", request=None, responses=responses
        )(get)
    return path(method.route, view.as_view(), name="wcs-" + method.route.replace("/", "-"))


# The current WCS call's request, for the host name it came to (its Host header, without the port): what an
# address handed back to the caller (e.g. /mpegts/startup's uri) uses when no setting names one. Read
# only when asked (`caller_host`): most calls never do.
_caller: ContextVar[object | None] = ContextVar("wcs_caller", default=None)


def set_caller_host(request) -> None:
    _caller.set(request)


def split_host(host: str) -> str:
    """``example.com:8081`` -> ``example.com``; ``[::1]:8081`` -> ``::1``."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def caller_host() -> str:
    request = _caller.get()
    if request is None:
        return ""
    try:
        host = request.get_host()
    except Exception:  # noqa: BLE001 - DisallowedHost and friends: Django answers those itself
        host = ""
    return split_host(host)


def wcs_application() -> Application:
    """The application WCS streams live in (WCS has no applications): ``WCS_APPLICATION`` (vhost/app)."""
    vhost, _, app = settings.WCS_APPLICATION.partition("/")
    application = Application.objects.select_related("virtual_host").filter(virtual_host__name=vhost, name=app).first()
    if application is None:
        raise WcsError(500, f"Internal error: the WCS application {settings.WCS_APPLICATION} does not exist")
    return application


def found(items: list, message: str) -> list:
    """WCS answers an empty find with 404 and the table's text (``message``)."""
    if not items:
        raise WcsError(404, message)
    return items
