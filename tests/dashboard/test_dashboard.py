"""The live dashboard: the admin home page embeds it with its state, /dashboard/state/ is for staff
only, and every engine heartbeat reaches /ws/events/?stats=1 sockets (a real Redis channel layer)
as a "stats" event while other sockets keep seeing stream events only."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.engine.models import EngineNode
from apps.engine.runner import heartbeat
from apps.hosting.models import Application
from apps.streams.consumers import StreamEventsConsumer
from apps.streams.models import Stream
from apps.streams.services import CounterSnapshot
from tests.conftest import OME_AUTH
from tests.integration.conftest import redis_url  # noqa: F401  (a real Redis for the channel layer)


@pytest.fixture
def app(db):
    return Application.objects.get(virtual_host__name="default", name="app")


@pytest.fixture
def node(db):
    return EngineNode.objects.create(node_id="node-a", hostname="a", rtmp_port=1935, media_http_port=3333)


@pytest.fixture
def operator(db):
    return User.objects.create_user("operator", password="operator-password-1", is_staff=True, is_superuser=True)


@pytest.fixture
def member(db):
    return User.objects.create_user("member", password="member-password-1")


def make_stream(app, node, name, **numbers) -> Stream:
    return Stream.objects.create(application=app, node=node, name=name, source_type="Rtmp", **numbers)


def embedded_state(html: str) -> dict:
    match = re.search(r'<script id="dashboard-state" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page embeds no dashboard state"
    return json.loads(match.group(1))


def test_the_admin_home_shows_nodes_and_live_streams(client, operator, app, node):
    stream = make_stream(app, node, "cam1", total_connections=3, connections={"hls": 2, "rtmp": 1, "webrtc": 0},
                         last_throughput_in=2_500_000, total_bytes_in=123_456)  # fmt: skip
    client.force_login(operator)

    response = client.get("/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="live-dashboard"' in html
    assert "dashboard/vendor/uplot/uPlot.iife.min.js" in html and "dashboard/dashboard.js" in html
    assert 'id="content-main"' in html  # the admin's own list of apps is still there
    state = embedded_state(html)
    assert [node["nodeId"] for node in state["nodes"]] == ["node-a"]
    assert state["nodes"][0]["alive"] is True and state["nodes"][0]["liveStreams"] == 1
    [shown] = state["streams"]
    assert shown["name"] == "cam1" and (shown["vhost"], shown["app"]) == ("default", "app")
    assert shown["viewers"] == 3 and shown["connections"] == {"hls": 2, "rtmp": 1}
    assert shown["bitrateIn"] == 2_500_000 and shown["bytesIn"] == 123_456
    assert shown["playUrl"] == f"/streams/{stream.pk}/play/"


def test_ended_streams_are_not_on_the_dashboard(client, operator, app, node):
    make_stream(app, node, "gone").end()
    make_stream(app, node, "here")
    client.force_login(operator)
    assert [stream["name"] for stream in client.get("/dashboard/state/").json()["streams"]] == ["here"]


def test_the_state_is_for_staff_only(client, member):
    response = client.get("/dashboard/state/")
    assert response.status_code == 403
    assert response.json() == {"error": "Sign in to the admin as staff to see the dashboard."}
    client.force_login(member)
    assert client.get("/dashboard/state/").status_code == 403
    assert client.get("/admin/").status_code == 302  # the admin sends non-staff to its login page


def test_the_state_costs_two_queries_however_many_streams_are_live(client, operator, app, node):
    client.force_login(operator)
    for index in range(20):
        make_stream(app, node, f"cam{index}")
    with CaptureQueriesContext(connection) as queries:
        state = client.get("/dashboard/state/").json()
    assert len(state["streams"]) == 20
    # Besides the session and its user: the nodes, and the streams with their applications.
    tables = [re.search(r'FROM "(\w+)"', query["sql"]).group(1) for query in queries.captured_queries]
    assert sorted(table for table in tables if table not in ("django_session", "auth_user")) == [
        "engine_enginenode",
        "streams_stream",
    ]


# -- stats events over /ws/events/ -------------------------------------------------------------------


@pytest.fixture
def channel_layer(settings, redis_url):  # noqa: F811
    """The real Redis channel layer, under a prefix of this test's own."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": f"test{uuid.uuid4().hex[:8]}"},
        }
    }


def events_socket(query: str = "") -> WebsocketCommunicator:
    return WebsocketCommunicator(
        StreamEventsConsumer.as_asgi(), f"/ws/events/{query}", headers=[(b"authorization", OME_AUTH.encode())]
    )


def snapshot(stream_id: int, **changes) -> CounterSnapshot:
    values = dict(
        stream_id=stream_id, total_bytes_in=5000, total_bytes_out=1000, last_recv_time=1_700_000_000.0,
        last_sent_time=1_700_000_001.0, connections={"rtmp": 1, "hls": 0}, total_connections=1,
        max_total_connections=1, max_total_connection_time=None, throughput_in=40_000, throughput_out=8000,
        input_tracks=[],
    )  # fmt: skip
    values.update(changes)
    return CounterSnapshot(**values)


# Transactional: the consumer's database_sync_to_async closes connections in a transaction (the test's,
# on PostgreSQL) as obsolete.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_each_engine_heartbeat_is_a_stats_event_for_sockets_that_ask(channel_layer, app, node):
    stream = make_stream(app, node, "cam1")

    async def scenario():
        dashboard, plain = events_socket("?stats=1"), events_socket()
        assert (await dashboard.connect())[0] and (await plain.connect())[0]
        try:
            # What the engine node does every heartbeat: store the counters, then tell the dashboards
            # (in this test's thread, so in its database transaction).
            await sync_to_async(heartbeat)(node, [snapshot(stream.pk)])
            event = await dashboard.receive_json_from(timeout=5)
            assert event["event"] == "stats" and event["node"] == "node-a" and event["time"]
            assert event["streams"] == [
                {"id": stream.pk, "viewers": 1, "connections": {"rtmp": 1}, "bitrateIn": 40_000, "bitrateOut": 8000,
                 "bytesIn": 5000, "bytesOut": 1000}
            ]  # fmt: skip
            # A node with no stream still heartbeats (the dashboard shows it alive).
            await sync_to_async(heartbeat)(node, [])
            assert (await dashboard.receive_json_from(timeout=5))["streams"] == []
            # Sockets that did not ask see no stats, as before.
            assert await plain.receive_nothing(timeout=0.5)
        finally:
            await dashboard.disconnect()
            await plain.disconnect()

    async_to_sync(scenario)()
    stream.refresh_from_db()
    assert stream.total_bytes_in == 5000  # the heartbeat itself is unchanged: counters stored


def test_strangers_get_no_stats(channel_layer):
    async def scenario():
        stranger = WebsocketCommunicator(
            StreamEventsConsumer.as_asgi(), "/ws/events/?stats=1", headers=[(b"authorization", b"Basic d3Jvbmc=")]
        )
        connected, code = await stranger.connect()
        assert not connected and code == 4401

    async_to_sync(scenario)()
