"""/metrics as Prometheus reads it: the exposition parsed with prometheus_client's own parser; live
streams, traffic and viewers per application, jobs per kind and state, engine nodes, Celery queues
(real Redis), a fixed number of queries per scrape, and no secret anywhere in it."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
import redis
from celery import Celery
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.engine.models import EngineNode
from apps.hosting.models import Application, VirtualHost
from apps.jobs.services import JOB_KINDS
from apps.metrics.collectors import celery_queue_lengths, celery_queues
from apps.pull.models import Pull
from apps.push.models import Push
from apps.recording.models import Record
from apps.streams.choices import StreamState
from apps.streams.models import Stream
from tests.conftest import OME_TOKEN
from tests.integration.conftest import free_port, redis_url  # noqa: F401  (a real Redis for the broker)

pytestmark = pytest.mark.django_db


def scrape(client) -> dict[tuple[str, tuple], float]:
    """GET /metrics, parsed: {(sample name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def labels(**values) -> tuple:
    return tuple(sorted(values.items()))


@pytest.fixture
def app():
    return Application.objects.get(virtual_host__name="default", name="app")


@pytest.fixture
def node():
    return EngineNode.objects.create(node_id="node-a", hostname="a", rtmp_port=1935, media_http_port=3333)


def make_stream(app, node, name, live=True, **numbers) -> Stream:
    return Stream.objects.create(
        application=app,
        node=node,
        name=name,
        source_type="Rtmp",
        state=StreamState.LIVE if live else StreamState.ENDED,
        remote_address="203.0.113.7:50000",
        **numbers,
    )


def test_it_reports_live_streams_traffic_and_viewers_per_application(client, app, node):
    make_stream(app, node, "cam1", total_bytes_in=1000, total_bytes_out=300, last_throughput_in=8000,
                connections={"rtmp": 2, "hls": 1}, total_connections=3)  # fmt: skip
    make_stream(app, node, "cam2", total_bytes_in=500, total_bytes_out=0, last_throughput_in=4000,
                last_throughput_out=1000, connections={"hls": 4}, total_connections=4)  # fmt: skip
    # An ended session still counts in the byte totals (counters never go down), not in live numbers.
    make_stream(app, node, "old", live=False, total_bytes_in=10_000, total_bytes_out=20_000, last_throughput_in=999,
                connections={"rtmp": 7})  # fmt: skip
    studio = Application.objects.create(virtual_host=VirtualHost.objects.get(name="default"), name="studio")

    samples = scrape(client)
    app_labels = labels(vhost="default", app="app")
    assert samples[("streamhub_streams_live", app_labels)] == 2
    assert samples[("streamhub_received_bytes_total", app_labels)] == 11_500
    assert samples[("streamhub_sent_bytes_total", app_labels)] == 20_300
    assert samples[("streamhub_throughput_in_bits_per_second", app_labels)] == 12_000
    assert samples[("streamhub_throughput_out_bits_per_second", app_labels)] == 1000
    assert samples[("streamhub_connections", labels(vhost="default", app="app", protocol="hls"))] == 5
    assert samples[("streamhub_connections", labels(vhost="default", app="app", protocol="rtmp"))] == 2
    assert samples[("streamhub_connections", labels(vhost="default", app="app", protocol="webrtc"))] == 0
    # An application with no stream is there, with zeros.
    studio_labels = labels(vhost="default", app=studio.name)
    assert samples[("streamhub_streams_live", studio_labels)] == 0
    assert samples[("streamhub_received_bytes_total", studio_labels)] == 0
    assert samples[("streamhub_connections", labels(vhost="default", app="studio", protocol="hls"))] == 0


def test_it_counts_media_jobs_by_kind_and_state(client, app):
    Record.objects.create(application=app, stream_name="cam1", record_id="r1", state="started")
    Record.objects.create(application=app, stream_name="cam2", record_id="r2", state="started")
    Record.objects.create(application=app, stream_name="cam3", record_id="r3", state="ready")
    Push.objects.create(application=app, stream_name="cam1", push_id="p1", protocol="rtmp",
                        url="rtmp://pusher:push-password@127.0.0.1/live", stream_key="secret-stream-key",
                        state="retrying", error="connection refused")  # fmt: skip

    samples = scrape(client)
    assert samples[("streamhub_jobs", labels(kind="record", state="started"))] == 2
    assert samples[("streamhub_jobs", labels(kind="record", state="ready"))] == 1
    assert samples[("streamhub_jobs", labels(kind="record", state="error"))] == 0
    assert samples[("streamhub_jobs", labels(kind="push", state="retrying"))] == 1
    assert samples[("streamhub_jobs", labels(kind="pull", state="started"))] == 0
    assert samples[("streamhub_jobs", labels(kind="hlsdump", state="stopped"))] == 0
    assert Pull.objects.count() == 0


def test_it_reports_engine_nodes_and_their_heartbeats(client, app, node):
    silent = EngineNode.objects.create(node_id="node-b", hostname="b", rtmp_port=1936, media_http_port=3334,
                                       last_heartbeat=timezone.now() - timedelta(minutes=5))  # fmt: skip
    make_stream(app, node, "cam1")

    samples = scrape(client)
    assert samples[("streamhub_engine_node_up", labels(node="node-a"))] == 1
    assert samples[("streamhub_engine_node_up", labels(node="node-b"))] == 0
    assert samples[("streamhub_engine_node_streams_live", labels(node="node-a"))] == 1
    assert samples[("streamhub_engine_node_streams_live", labels(node="node-b"))] == 0
    beat = samples[("streamhub_engine_node_last_heartbeat_timestamp_seconds", labels(node="node-b"))]
    assert beat == pytest.approx(silent.last_heartbeat.timestamp())
    assert (
        abs(samples[("streamhub_engine_node_last_heartbeat_timestamp_seconds", labels(node="node-a"))] - time.time())
        < 60
    )


def test_it_reports_the_celery_queues_of_the_broker(client):
    samples = scrape(client)
    assert samples[("streamhub_celery_broker_up", ())] == 1
    queues = {dict(label)["queue"] for name, label in samples if name == "streamhub_celery_queue_length"}
    assert queues == set(celery_queues()) and {"control", "media"} <= queues


def test_queue_lengths_count_waiting_tasks_under_the_installation_prefix(redis_url):  # noqa: F811
    """Tasks sent but not taken wait in the broker's lists, under STREAMHUB_CELERY_PREFIX's key prefix."""
    prefix = f"metrics-test-{uuid.uuid4().hex[:8]}:"
    app = Celery("metrics-test", broker=redis_url, broker_transport_options={"global_keyprefix": prefix})
    try:
        assert celery_queue_lengths(["media", "control"], app) == {"media": 0, "control": 0}
        for _ in range(3):
            app.send_task("apps.recording.tasks.record_task", args=[0], queue="media")
        app.send_task("apps.jobs.tasks.resume_orphaned_jobs", queue="control", priority=9)
        assert celery_queue_lengths(["media", "control"], app) == {"media": 3, "control": 1}
        # Another installation on the same Redis (another prefix) sees none of them.
        other = Celery("metrics-other", broker=redis_url, broker_transport_options={"global_keyprefix": prefix + "x"})
        assert celery_queue_lengths(["media"], other) == {"media": 0}
    finally:
        keys = redis.Redis.from_url(redis_url)
        for key in keys.scan_iter(match=f"{prefix}*"):
            keys.delete(key)


def test_a_broker_that_does_not_answer_is_reported_down_without_failing_the_scrape():
    app = Celery("metrics-down", broker=f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    assert celery_queue_lengths(celery_queues(), app) is None
    assert time.monotonic() - started < 5


def test_a_scrape_costs_the_same_few_queries_however_many_streams_are_live(client, app, node):
    make_stream(app, node, "first", connections={"hls": 1})
    with CaptureQueriesContext(connection) as few:
        scrape(client)
    for index in range(40):
        make_stream(app, node, f"cam{index}", connections={"hls": 1, "rtmp": 1}, total_bytes_in=index)
    Application.objects.create(virtual_host=VirtualHost.objects.get(name="default"), name="studio")
    with CaptureQueriesContext(connection) as many:
        samples = scrape(client)
    assert samples[("streamhub_streams_live", labels(vhost="default", app="app"))] == 41
    # A handful, plus one GROUP BY per kind of media job (apps register theirs).
    assert len(many.captured_queries) == len(few.captured_queries) <= 4 + len(JOB_KINDS)


def test_no_credential_appears_in_the_metrics(client, app, node, settings):
    Push.objects.create(application=app, stream_name="cam1", push_id="p1", protocol="rtmp",
                        url="rtmp://pusher:push-password@127.0.0.1/live", stream_key="secret-stream-key")  # fmt: skip
    make_stream(app, node, "cam1", connections={"rtmp": 1})
    body = client.get("/metrics").content.decode()
    for secret in (OME_TOKEN, settings.SECRET_KEY, "push-password", "secret-stream-key", "203.0.113.7"):
        assert secret not in body


def test_it_speaks_openmetrics_when_the_scraper_asks(client):
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")


def test_it_only_allows_get(client):
    response = client.post("/metrics", data="x", content_type="text/plain")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert b"read-only" in response.content
