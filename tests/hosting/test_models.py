"""Hosting models: host name matching, OME rendering, output stream names."""

import pytest

from apps.hosting.models import OutputProfile, VirtualHost

pytestmark = pytest.mark.django_db


def test_the_default_vhost_matches_any_host():
    default = VirtualHost.objects.get(name="default")
    assert default.matches_host("anything.example") and default.matches_host("127.0.0.1")


def test_patterns_match_subdomains_only():
    vhost = VirtualHost.objects.create(name="studio")
    vhost.set_host_names(["studio.example", "*.studio.example"])
    assert vhost.matches_host("STUDIO.example")
    assert vhost.matches_host("live.studio.example")
    assert not vhost.matches_host("studio.example.evil")


def test_output_stream_name_macro():
    profile = OutputProfile.objects.get(name="bypass_stream")
    profile.output_stream_name = "${OriginStreamName}_720p"
    assert profile.output_stream_name_for("cam1") == "cam1_720p"
