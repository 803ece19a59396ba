"""Connected WebSocket clients: found by app key, session or version, and told (over a real Channels
layer) their new log level or to disconnect, which also forgets their row."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from apps.connections import services
from apps.connections.models import Connection

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def _client(session_id: str, app_key: str = "defaultApp", version: str = "2.0") -> Connection:
    channel = asyncio.run(get_channel_layer().new_channel())
    return Connection.objects.create(
        session_id=session_id, channel_name=channel, app_key=app_key, client_version=version
    )


def _received(connection: Connection) -> dict:
    return asyncio.run(asyncio.wait_for(get_channel_layer().receive(connection.channel_name), 2))


def test_the_session_id_names_client_and_server_addresses():
    scope = {"client": ("10.0.0.5", 51000), "server": ("10.0.0.1", 8080)}

    assert services.session_id_of(scope) == "/10.0.0.5:51000/10.0.0.1:8080"


def test_clients_are_found_by_app_key_session_and_version():
    first = _client("/a:1/s:1", app_key="chat")
    _client("/b:2/s:1", app_key="other", version="1.0")

    assert list(services.find(app_key="chat")) == [first]
    assert list(services.find(session_id="/a:1/s:1", client_version="2.0")) == [first]
    assert services.find().count() == 2


def test_a_new_log_level_is_stored_and_sent_to_the_client():
    connection = _client("/a:1/s:1")

    services.set_log_level(connection, "DEBUG")

    assert Connection.objects.get(pk=connection.pk).log_level == "DEBUG"
    assert _received(connection) == {"type": "client.log_level", "logLevel": "DEBUG"}


def test_a_disconnected_client_is_told_and_forgotten():
    connection = _client("/a:1/s:1")

    services.disconnect(connection)

    assert _received(connection) == {"type": "client.disconnect"}
    assert not Connection.objects.filter(session_id="/a:1/s:1").exists()
