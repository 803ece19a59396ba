"""WCS /cdn/stream/access_list/add|remove|delete|print: the table's statuses and texts, and what is stored."""

from __future__ import annotations

import pytest

from apps.access.models import AclKey
from apps.hosting.models import Application
from apps.streams.models import Stream

pytestmark = pytest.mark.django_db
ACL = "/rest-api/cdn/stream/access_list"


@pytest.fixture
def live_stream(db) -> Stream:
    return Stream.objects.create(application=Application.objects.get(name="app"), name="cam", source_type="Rtmp")


def stored_keys() -> list[str]:
    return sorted(AclKey.objects.filter(stream_name="cam").values_list("key", flat=True))


def test_add_then_print_lists_the_keys(wcs, live_stream):
    response = wcs.post(f"{ACL}/add", {"name": "cam", "keys": ["k1", "k2", "k1"]})
    assert response.status_code == 200 and response.content == b""
    assert stored_keys() == ["k1", "k2"]
    assert wcs.post(f"{ACL}/add", {"name": "cam", "keys": "k3, k2"}).status_code == 200
    response = wcs.post(f"{ACL}/print", {"name": "cam"})
    assert response.status_code == 200 and sorted(response.json()) == ["k1", "k2", "k3"]


def test_remove_and_delete(wcs, live_stream):
    wcs.post(f"{ACL}/add", {"name": "cam", "keys": ["k1", "k2"]})
    assert wcs.post(f"{ACL}/remove", {"name": "cam", "keys": ["k1"]}).status_code == 200
    assert stored_keys() == ["k2"]
    assert wcs.post(f"{ACL}/delete", {"name": "cam"}).status_code == 200
    assert stored_keys() == []
    response = wcs.post(f"{ACL}/print", {"name": "cam"})
    assert (response.status_code, response.json()["message"]) == (404, "ACL not found")
    response = wcs.post(f"{ACL}/remove", {"name": "cam", "keys": ["k2"]})
    assert (response.status_code, response.json()["message"]) == (404, "ACL not found")


def test_a_stream_that_is_not_live_is_not_found(wcs):
    for method, body in (("add", {"name": "nope", "keys": ["k"]}), ("delete", {"name": "nope"})):
        response = wcs.post(f"{ACL}/{method}", body)
        assert (response.status_code, response.json()["message"]) == (404, "Stream not found")
        assert response.json()["path"] == f"{ACL}/{method}"
    assert AclKey.objects.count() == 0


def test_bad_bodies_are_400_and_change_nothing(wcs, live_stream):
    for body in (
        {},
        {"name": "cam"},
        {"name": "cam", "keys": []},
        {"name": "cam", "keys": [1]},
        {"name": "cam", "keys": ""},
    ):
        response = wcs.post(f"{ACL}/add", body)
        assert response.status_code == 400, body
        assert response.json()["message"].startswith("Bad request")
    assert AclKey.objects.count() == 0


def test_the_methods_are_in_the_openapi_document(client):
    response = client.get("/rest-api/openapi_spec")
    assert response.status_code == 200
    for method in ("add", "remove", "delete", "print"):
        assert f"/rest-api/cdn/stream/access_list/{method}" in response.content.decode()
