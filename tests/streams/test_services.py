"""Stream rows: a publish starts one, heartbeats store counters, an end or a silent node ends it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.engine.models import EngineNode
from apps.hosting.models import Application
from apps.streams import services
from apps.streams.models import Stream

pytestmark = pytest.mark.django_db


@pytest.fixture
def app():
    return Application.objects.get(name="app")


@pytest.fixture
def node():
    return EngineNode.objects.create(node_id="node-a", hostname="a", rtmp_port=1935, media_http_port=3333)


def snapshot(stream, **changes):
    values = dict(
        stream_id=stream.pk, total_bytes_in=1000, total_bytes_out=500, last_recv_time=1_700_000_000.0,
        last_sent_time=1_700_000_001.0, connections={"rtmp": 2, "hls": 1}, total_connections=3,
        max_total_connections=4, max_total_connection_time=1_700_000_000.5, throughput_in=8000, throughput_out=4000,
        input_tracks=[{"id": 0, "kind": "video"}],
    )  # fmt: skip
    values.update(changes)
    return services.CounterSnapshot(**values)


def test_a_publish_starts_a_live_row(app, node):
    stream = services.stream_started(app, "cam", node, "Rtmp", "127.0.0.1:5000")
    assert stream.is_live and stream.node == node and stream.source_type == "Rtmp"
    assert list(Stream.objects.live().values_list("name", flat=True)) == ["cam"]


def test_a_new_publish_ends_a_stale_row_of_the_same_name(app, node):
    first = services.stream_started(app, "cam", node, "Rtmp")
    second = services.stream_started(app, "cam", node, "Rtmp")
    first.refresh_from_db()
    assert first.state == "ended" and second.is_live


def test_heartbeats_store_counters_and_keep_the_maximum_throughput(app, node):
    stream = services.stream_started(app, "cam", node, "Rtmp")
    services.record_counters([snapshot(stream, throughput_in=9000)])
    services.record_counters([snapshot(stream, total_bytes_in=3000, throughput_in=2000)])
    stream.refresh_from_db()
    assert stream.total_bytes_in == 3000
    assert stream.last_throughput_in == 2000 and stream.max_throughput_in == 9000
    assert stream.connection_counts()["rtmp"] == 2 and stream.total_connections == 3
    assert stream.input_tracks == [{"id": 0, "kind": "video"}]


def test_heartbeats_write_only_what_changed_in_one_statement(app, node, django_assert_num_queries):
    streams = [services.stream_started(app, name, node, "Rtmp") for name in ("a", "b", "c")]
    first = [snapshot(stream, hls_viewers=[{"address": "10.0.0.1"}]) for stream in streams]
    with django_assert_num_queries(1):
        assert services.record_counters(first) == 3
    stored = {s.stream_id: s for s in first}
    # Next heartbeat: "a" got bytes and a slower throughput, "b" lost its HLS viewer, "c" has nothing new.
    second = [
        snapshot(streams[0], total_bytes_in=5000, throughput_in=100, hls_viewers=[{"address": "10.0.0.1"}]),
        snapshot(streams[1], hls_viewers=[]),
        first[2],
    ]
    with django_assert_num_queries(1):
        assert services.record_counters(second, stored) == 2
    for stream in streams:
        stream.refresh_from_db()
    a, b, c = streams
    assert a.total_bytes_in == 5000 and a.last_throughput_in == 100 and a.max_throughput_in == 8000
    assert a.hls_viewers == [{"address": "10.0.0.1"}] and a.connection_counts()["rtmp"] == 2
    assert b.hls_viewers == [] and b.total_bytes_in == 1000 and b.max_throughput_in == 8000
    assert c.hls_viewers == [{"address": "10.0.0.1"}] and c.input_tracks == [{"id": 0, "kind": "video"}]
    assert c.updated_at < a.updated_at  # untouched
    with django_assert_num_queries(0):
        assert services.record_counters(second, {s.stream_id: s for s in second}) == 0


def test_heartbeats_leave_ended_rows_alone(app, node):
    ended, live = (services.stream_started(app, name, node, "Rtmp") for name in ("ended", "live"))
    services.stream_ended(ended.pk)
    assert services.record_counters([snapshot(ended), snapshot(live)]) == 1
    ended.refresh_from_db()
    assert ended.total_bytes_in == 0 and ended.total_connections == 0


def test_an_ended_stream_has_no_viewers(app, node):
    stream = services.stream_started(app, "cam", node, "Rtmp")
    services.record_counters([snapshot(stream)])
    services.stream_ended(stream.pk)
    stream.refresh_from_db()
    assert stream.state == "ended" and stream.ended_at is not None
    assert stream.total_connections == 0 and stream.connections == {}
    assert stream.total_bytes_in == 1000  # the totals stay for the statistics


def test_streams_of_a_silent_node_end(app, node, settings):
    settings.ENGINE_NODE_TIMEOUT = 15
    alive = EngineNode.objects.create(node_id="node-b", hostname="b", rtmp_port=1935, media_http_port=3333)
    lost = services.stream_started(app, "lost", node, "Rtmp")
    kept = services.stream_started(app, "kept", alive, "Rtmp")
    EngineNode.objects.filter(pk=node.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=30))
    assert services.end_streams_of_stale_nodes() == 1
    lost.refresh_from_db()
    kept.refresh_from_db()
    assert lost.state == "ended" and kept.is_live


def test_stopping_a_stream_of_a_dead_node_just_ends_it(app, node):
    stream = services.stream_started(app, "cam", node, "Rtmp")
    EngineNode.objects.filter(pk=node.pk).update(last_heartbeat=timezone.now() - timedelta(hours=1))
    stream.refresh_from_db()
    services.request_stop(stream)
    stream.refresh_from_db()
    assert stream.state == "ended"
