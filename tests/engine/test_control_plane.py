"""The engine's database control plane: which vhost and application a publish or play belongs to."""

import asyncio

import pytest

from apps.engine.control_plane import DatabaseControlPlane
from apps.engine.models import EngineNode
from apps.hosting.models import Application, VirtualHost

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def control():
    node = EngineNode.objects.create(node_id="n", hostname="n", rtmp_port=1935, media_http_port=3333)
    studio = VirtualHost.objects.create(name="studio")
    studio.set_host_names(["*.studio.example", "studio.example"])
    Application.objects.create(virtual_host=studio, name="app", publishers={"hls": {"segmentDuration": 2}})
    clock = [0.0]
    plane = DatabaseControlPlane(node, clock=lambda: clock[0])
    plane.advance = lambda seconds: clock.__setitem__(0, clock[0] + seconds)
    return plane


def test_host_names_choose_the_vhost(control):
    studio = asyncio.run(control.resolve_application("live.studio.example", "app"))
    assert (studio.vhost, studio.app, studio.hls_segment_duration) == ("studio", "app", 2.0)
    fallback = asyncio.run(control.resolve_application("127.0.0.1", "app"))
    assert fallback.vhost == "default" and fallback.hls_segment_duration == 4.0


def test_unknown_apps_resolve_to_nothing(control):
    assert asyncio.run(control.resolve_application("127.0.0.1", "nosuchapp")) is None
    assert asyncio.run(control.application_config("nosuchvhost", "app")) is None


def test_lookups_are_cached_briefly(control):
    assert asyncio.run(control.application_config("studio", "app")) is not None
    Application.objects.filter(name="app", virtual_host__name="studio").delete()
    assert asyncio.run(control.application_config("studio", "app")) is not None  # still cached
    control.advance(2.5)
    assert asyncio.run(control.application_config("studio", "app")) is None
