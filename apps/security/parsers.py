"""JSON request bodies with a depth limit: a body nested deeper than ``API_MAX_JSON_DEPTH`` (or so deep
that Python's parser gives up) is a 400 in the API's own format, never a 500; and the size cap of
payloads relayed to WebSocket subscribers."""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import exceptions, parsers, serializers


class JsonTooDeep(exceptions.ParseError):
    """The body nests objects and arrays deeper than the API accepts."""


def too_deep(limit: int) -> JsonTooDeep:
    return JsonTooDeep(f"JSON nested deeper than {limit} levels")


def depth_of(data: object, limit: int) -> int:
    """How deep ``data`` nests lists and dicts, counted without recursion up to ``limit + 1``."""
    deepest = 0
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def check_depth(data: object) -> object:
    limit = settings.API_MAX_JSON_DEPTH
    if depth_of(data, limit) > limit:
        raise too_deep(limit)
    return data


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def loads_limited(body: bytes | str) -> object:
    """``json.loads`` for API bodies: NaN/Infinity refused (ParseError), depth limited (JsonTooDeep)."""
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise too_deep(settings.API_MAX_JSON_DEPTH) from None
    except ValueError as error:
        raise exceptions.ParseError(f"JSON parse error - {error}") from error
    return check_depth(data)


class DepthLimitedJSONParser(parsers.JSONParser):
    """DRF's JSON parser (strict: no NaN/Infinity) with the depth limit."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise too_deep(settings.API_MAX_JSON_DEPTH) from None
        return check_depth(data)


class PayloadField(serializers.JSONField):
    """Any JSON relayed to subscribers as it is (WCS /stream/event/send, /data/send), at most
    ``WCS_MAX_EVENT_PAYLOAD_BYTES`` bytes of JSON: one call must not flood every subscriber."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        limit = settings.WCS_MAX_EVENT_PAYLOAD_BYTES
        if len(json.dumps(data, separators=(",", ":")).encode()) > limit:
            raise serializers.ValidationError(f"The payload is larger than {limit} bytes of JSON.")
        return data
