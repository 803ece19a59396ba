"""Answers shared by many requests whose JSON is rendered once, not once per request: a list
``cached_until_changed`` computes once per change (WCS /stream/find_all, issue #19) is the same object
for every request until the next change, and so is its JSON.

`RenderedOnceList` is such a list (read-only, like every shared answer); `JSONRenderer` is DRF's,
keeping the JSON of a `RenderedOnceList` it rendered (per indent: ``Accept: application/json;
indent=4`` is rendered, once, apart). Any other data is rendered as DRF renders it.
"""

from __future__ import annotations

from rest_framework import renderers


class RenderedOnceList(list):
    """A list shared by the requests that answer it (never changed), with its JSON once rendered."""

    __slots__ = ("rendered",)

    def __init__(self, items=()) -> None:
        super().__init__(items)
        self.rendered: dict[tuple[type, int | None], bytes] = {}


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSON renderer; a `RenderedOnceList` is rendered once per renderer class and indent."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if not isinstance(data, RenderedOnceList):
            return super().render(data, accepted_media_type, renderer_context)
        key = (type(self), self.get_indent(accepted_media_type, renderer_context or {}))
        rendered = data.rendered.get(key)
        if rendered is None:  # (two requests may both render it: the same bytes)
            rendered = data.rendered[key] = super().render(data, accepted_media_type, renderer_context)
        return rendered
