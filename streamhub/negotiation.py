"""DRF's content negotiation, worked out once per kind of request instead of once per request.

Every DRF answer picks its renderer from the Accept header (and a ``?format=``), and a request with a
body its parser from the Content-Type: parsing the headers' media types and matching them against the
view's renderers or parsers cost an API call (WCS find_all, OME GET /v1/vhosts: issue #19) more than
its cached answer. The choice depends only on the renderers (their media type and format) or parsers
(their media type) and on the headers and the format asked for, so `RememberedContentNegotiation`
remembers it for the last ``REMEMBERED`` combinations it saw. A request no renderer fits (406, or 404
for an unknown format) is remembered by no one: DRF works it out, and refuses it, itself.
"""

from __future__ import annotations

import functools

from rest_framework.negotiation import DefaultContentNegotiation

REMEMBERED = 256


class _Candidate:
    """What DRF's negotiation reads of a renderer or a parser."""

    __slots__ = ("media_type", "format")

    def __init__(self, media_type: str, format: str) -> None:
        self.media_type = media_type
        self.format = format


class _Request:
    """What DRF's renderer negotiation reads of a request."""

    def __init__(self, accept: str | None, format: str | None) -> None:
        self.META = {} if accept is None else {"HTTP_ACCEPT": accept}
        self.query_params = {} if format is None else {DefaultContentNegotiation.settings.URL_FORMAT_OVERRIDE: format}


@functools.lru_cache(maxsize=REMEMBERED)
def _choice(renderers: tuple[tuple[str, str], ...], accept: str | None, format: str | None) -> tuple[int, str]:
    """(index of the renderer, accepted media type), as DRF chooses them; raises as DRF does."""
    candidates = [_Candidate(media_type, format) for media_type, format in renderers]
    renderer, media_type = DefaultContentNegotiation().select_renderer(_Request(accept, None), candidates, format)
    return candidates.index(renderer), media_type


class _Body:
    """What DRF's parser negotiation reads of a request."""

    def __init__(self, content_type: str) -> None:
        self.content_type = content_type


@functools.lru_cache(maxsize=REMEMBERED)
def _parser_choice(media_types: tuple[str, ...], content_type: str) -> int | None:
    """The index of the parser DRF chooses for ``content_type`` among parsers of ``media_types``."""
    parsers = [_Candidate(media_type, "") for media_type in media_types]
    parser = DefaultContentNegotiation().select_parser(_Body(content_type), parsers)
    return None if parser is None else parsers.index(parser)


class RememberedContentNegotiation(DefaultContentNegotiation):
    def select_parser(self, request, parsers):
        index = _parser_choice(tuple(parser.media_type for parser in parsers), request.content_type)
        return None if index is None else parsers[index]

    def select_renderer(self, request, renderers, format_suffix=None):
        format_query_param = self.settings.URL_FORMAT_OVERRIDE
        # No query string: no ?format= (and no QueryDict to make for it).
        asked = format_query_param and getattr(request, "_request", request).META.get("QUERY_STRING")
        format = format_suffix or (request.query_params.get(format_query_param) if asked else None)
        kinds = tuple((renderer.media_type, renderer.format) for renderer in renderers)
        try:
            index, media_type = _choice(kinds, request.META.get("HTTP_ACCEPT"), format or None)
        except Exception:  # noqa: BLE001 - refused: DRF's own error, with the view's renderers in it
            return super().select_renderer(request, renderers, format_suffix)
        return renderers[index], media_type
