"""streamhub.rendered_once: a shared answer's JSON is rendered once (per indent), as DRF renders it."""

from __future__ import annotations

from rest_framework import renderers

from streamhub.rendered_once import JSONRenderer, RenderedOnceList

ITEMS = [{"name": "cam", "width": 640, "text": "caf\u00e9 \u2028"}, {"name": "b", "published": True, "x": None}]


def test_the_same_bytes_as_drf_rendered_once():
    answer = RenderedOnceList(ITEMS)
    renderer = JSONRenderer()
    first = renderer.render(answer, "application/json", {})
    assert first == renderers.JSONRenderer().render(ITEMS, "application/json", {})
    assert JSONRenderer().render(answer, "application/json", {}) is first  # not rendered again


def test_each_indent_rendered_apart():
    answer = RenderedOnceList(ITEMS)
    renderer = JSONRenderer()
    compact = renderer.render(answer, "application/json", {})
    indented = renderer.render(answer, "application/json; indent=4", {})
    assert indented == renderers.JSONRenderer().render(ITEMS, "application/json; indent=4", {})
    assert indented != compact
    assert renderer.render(answer, "application/json; indent=4", {}) is indented
    assert renderer.render(answer, "application/json", {}) is compact


def test_other_data_rendered_as_drf_does():
    assert JSONRenderer().render(ITEMS, None, {}) == renderers.JSONRenderer().render(ITEMS, None, {})
    assert JSONRenderer().render(None, None, {}) == b""
