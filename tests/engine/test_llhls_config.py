"""The application's OME ``publishers.llhls`` settings reach the engine's LL-HLS packaging."""

import pytest

from apps.engine.control_plane import application_config
from apps.hosting.models import Application, VirtualHost

pytestmark = pytest.mark.django_db


def config_of(publishers: dict):
    vhost = VirtualHost.objects.create(name="studio")
    return application_config(Application.objects.create(virtual_host=vhost, name="app", publishers=publishers))


def test_it_maps_ome_llhls_settings():
    config = config_of({"llhls": {"chunkDuration": 0.2, "segmentDuration": 2, "segmentCount": 4}})
    assert (config.llhls_part_duration, config.llhls_segment_duration, config.llhls_segment_count) == (0.2, 2.0, 4)


def test_it_uses_the_defaults_without_settings():
    config = config_of({"llhls": {}, "webrtc": {}})
    assert (config.llhls_part_duration, config.llhls_segment_duration, config.llhls_segment_count) == (0.2, 6.0, 10)


def test_it_ignores_unusable_values():
    config = config_of({"llhls": {"chunkDuration": "fast", "segmentDuration": 0, "segmentCount": -2}})
    assert (config.llhls_part_duration, config.llhls_segment_duration, config.llhls_segment_count) == (0.2, 6.0, 10)
