"""`runengine` opens the media HTTPS port on the media port's public address (STREAMHUB_MEDIA_HTTP_HOST) when
nginx fronts the engine, whose plain media HTTP then listens on a loopback upstream port: HTTPS stays with the
engine (README "HTTP viewers through nginx") and must stay reachable."""

from apps.engine.runner import media_https_host


def test_runengine_puts_https_on_the_media_hosts_address_when_nginx_fronts_the_engine(settings):
    settings.ENGINE_HTTP_HOST = "0.0.0.0"
    settings.ENGINE_HTTP_FRONT_TOKEN = ""
    assert media_https_host("127.0.0.1") == "127.0.0.1"  # no front: beside the plain port, as it always was
    settings.ENGINE_HTTP_FRONT_TOKEN = "front-token"
    assert media_https_host("127.0.0.1") == "0.0.0.0"
