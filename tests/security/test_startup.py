"""The API server's start warns loudly when WCS answers without credentials beyond loopback."""

from __future__ import annotations

import logging

import pytest

from apps.security.startup import listening_host, warn_if_wcs_open


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "streamhub.example"])
def test_an_open_wcs_api_beyond_loopback_is_announced(settings, caplog, host):
    settings.WCS_REST_AUTH = False
    with caplog.at_level(logging.WARNING, logger="streamhub.security"):
        assert warn_if_wcs_open(host)
    assert "WCS REST API IS OPEN" in caplog.text and host in caplog.text
    assert "STREAMHUB_WCS_REST_AUTH=true" in caplog.text


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_stays_quiet(settings, caplog, host):
    settings.WCS_REST_AUTH = False
    with caplog.at_level(logging.WARNING, logger="streamhub.security"):
        assert not warn_if_wcs_open(host)
    assert caplog.text == ""


def test_authentication_on_stays_quiet(settings, caplog):
    settings.WCS_REST_AUTH = True
    assert not warn_if_wcs_open("0.0.0.0")


def test_the_bound_address_comes_from_daphne_s_arguments(settings):
    settings.API_HOST = "0.0.0.0"
    assert listening_host(["daphne", "-b", "127.0.0.1", "-p", "8081", "streamhub.asgi:application"]) == "127.0.0.1"
    assert listening_host(["daphne", "--bind=10.0.0.2"]) == "10.0.0.2"
    assert listening_host(["daphne", "streamhub.asgi:application"]) == "0.0.0.0"
