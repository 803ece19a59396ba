"""streamhub.negotiation: DRF's choice of renderer, remembered per Accept header and format, is DRF's;
a request no renderer fits is refused as DRF refuses it."""

from __future__ import annotations

import pytest
from django.http import Http404
from rest_framework import exceptions, parsers, renderers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apps.api_wcs.views.base import WcsView
from streamhub.negotiation import RememberedContentNegotiation, _choice, _parser_choice

ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "application/json; indent=4",
    "application/*;q=0.5, text/html",
    "text/html",
    "text/html, application/xhtml+xml, */*;q=0.8",
    "image/png",
]
RENDERER_SETS = [
    [renderers.JSONRenderer()],
    [renderers.JSONRenderer(), renderers.BrowsableAPIRenderer()],
    [renderers.BrowsableAPIRenderer(), renderers.JSONRenderer()],
]


def drf_request(accept: str | None, query: str = "") -> Request:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    return Request(APIRequestFactory().get("/v1/vhosts" + query, **headers))


def choice(negotiation, request, renderer_set, format_suffix=None):
    try:
        renderer, media_type = negotiation.select_renderer(request, renderer_set, format_suffix)
    except (exceptions.NotAcceptable, Http404) as error:
        return type(error).__name__
    return renderer_set.index(renderer), media_type


@pytest.mark.parametrize("renderer_set", RENDERER_SETS)
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize(
    ("query", "format_suffix"), [("", None), ("?format=json", None), ("?format=xml", None), ("", "api")]
)
def test_the_choice_is_drfs(renderer_set, accept, query, format_suffix):
    request = drf_request(accept, query)
    expected = choice(DefaultContentNegotiation(), request, renderer_set, format_suffix)
    for _ in range(2):  # worked out, then remembered
        assert choice(RememberedContentNegotiation(), request, renderer_set, format_suffix) == expected


def test_worked_out_once():
    _choice.cache_clear()
    for _ in range(3):
        RememberedContentNegotiation().select_renderer(drf_request("application/json"), [renderers.JSONRenderer()])
    assert (_choice.cache_info().misses, _choice.cache_info().hits) == (1, 2)


def test_a_refusal_names_the_views_renderers():
    renderer_set = [renderers.JSONRenderer()]
    with pytest.raises(exceptions.NotAcceptable) as refused:
        RememberedContentNegotiation().select_renderer(drf_request("text/html"), renderer_set)
    assert refused.value.available_renderers == renderer_set


PARSER_SETS = [
    [parsers.JSONParser(), parsers.FormParser(), parsers.MultiPartParser()],
    [parser() for parser in WcsView.parser_classes],  # JSON, then any content type as JSON
    [parsers.JSONParser()],
]
CONTENT_TYPES = [
    "",
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "multipart/form-data; boundary=x",
]


@pytest.mark.parametrize("parser_set", PARSER_SETS)
@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_the_parser_is_drfs(parser_set, content_type):
    request = Request(APIRequestFactory().generic("POST", "/rest-api/stream/find", b"{}", content_type=content_type))
    expected = DefaultContentNegotiation().select_parser(request, parser_set)
    for _ in range(2):
        assert RememberedContentNegotiation().select_parser(request, parser_set) is expected


def test_the_parser_is_worked_out_once():
    _parser_choice.cache_clear()
    request = Request(APIRequestFactory().post("/rest-api/stream/find", b"{}", content_type="application/json"))
    for _ in range(3):
        RememberedContentNegotiation().select_parser(request, [parsers.JSONParser()])
    assert (_parser_choice.cache_info().misses, _parser_choice.cache_info().hits) == (1, 2)
