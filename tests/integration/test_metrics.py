"""/metrics on a real platform (Daphne, engine node, Redis, later a Celery worker), scraped as
Prometheus would and parsed with prometheus_client's parser: Debian's ffmpeg publishes over RTMP
and plays it back, and the numbers move; a record waits in the media queue until a worker comes."""

from __future__ import annotations

import subprocess

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import LiveStreamHub, wait_for
from tests.integration.test_engine import publish, wait_live

pytestmark = pytest.mark.services
APP = {"vhost": "default", "app": "app"}
SECRETS = ("ome-access-token", "b21lLWFjY2Vzcy10b2tlbg==", "operator-password-1", "dev-insecure-streamhub-secret-key")


@pytest.fixture(scope="module")
def platform(tmp_path_factory, redis_url):
    """API server and engine node; no Celery worker until a test starts one."""
    server = LiveStreamHub(tmp_path_factory.mktemp("metrics"), redis_url)
    server.start(engine=True)
    yield server
    server.stop()


def scrape(platform) -> dict[tuple[str, tuple], float]:
    response = requests.get(f"{platform.url}/metrics", timeout=10)
    assert response.status_code == 200
    for secret in SECRETS:
        assert secret not in response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def key(name: str, **labels) -> tuple[str, tuple]:
    return (name, tuple(sorted(labels.items())))


def metric(platform, name: str, **labels) -> float:
    return scrape(platform)[key(name, **labels)]


def rtmp_viewer(platform, name: str) -> subprocess.Popen:
    """ffmpeg playing the stream over RTMP (a viewer the engine counts)."""
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-rw_timeout", "10000000", "-i", f"{platform.rtmp}/app/{name}", "-c", "copy",
         "-f", "null", "-"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_metrics_move_when_a_stream_is_published_and_watched(platform):
    node = platform.env["STREAMHUB_NODE_ID"]
    before = wait_for(lambda: (s := scrape(platform))[key("streamhub_streams_live", **APP)] == 0 and s, 20)
    assert before[key("streamhub_engine_node_up", node=node)] == 1
    heartbeat_before = before[key("streamhub_engine_node_last_heartbeat_timestamp_seconds", node=node)]
    received_before = before[key("streamhub_received_bytes_total", **APP)]

    publisher = publish(platform, "metered", seconds=60, size="320x180")
    viewer = None
    try:
        wait_live(platform, "metered", publisher)
        viewer = rtmp_viewer(platform, "metered")
        wait_for(lambda: metric(platform, "streamhub_connections", protocol="rtmp", **APP) == 1, 20)
        samples = wait_for(
            lambda: (s := scrape(platform))[key("streamhub_throughput_in_bits_per_second", **APP)] > 0
            and s[key("streamhub_throughput_out_bits_per_second", **APP)] > 0
            and s,
            20,
        )
        assert samples[key("streamhub_streams_live", **APP)] == 1
        assert samples[key("streamhub_engine_node_streams_live", node=node)] == 1
        received = samples[key("streamhub_received_bytes_total", **APP)]
        assert received > received_before
        assert samples[key("streamhub_sent_bytes_total", **APP)] > 0
        # The counters keep growing while the stream is live, and the node keeps heartbeating.
        later = wait_for(
            lambda: (s := scrape(platform))[key("streamhub_received_bytes_total", **APP)] > received and s,
            10,
        )
        assert later[key("streamhub_engine_node_last_heartbeat_timestamp_seconds", node=node)] > heartbeat_before
    finally:
        if viewer:
            viewer.kill()
            viewer.wait()
        publisher.kill()
        publisher.wait()

    ended = wait_for(lambda: (s := scrape(platform))[key("streamhub_streams_live", **APP)] == 0 and s, 20)
    assert ended[key("streamhub_connections", protocol="rtmp", **APP)] == 0
    assert ended[key("streamhub_throughput_in_bits_per_second", **APP)] == 0
    # A counter never goes down: the ended session's bytes still count.
    assert ended[key("streamhub_received_bytes_total", **APP)] >= later[key("streamhub_received_bytes_total", **APP)]


def test_a_record_waits_in_the_media_queue_until_a_worker_takes_it(platform):
    publisher = publish(platform, "queued", seconds=60, size="320x180")
    try:
        wait_live(platform, "queued", publisher)
        body = {"id": "metrics-rec", "stream": {"name": "queued"}, "filePath": "metrics/${Id}.mp4"}
        response = platform.api("POST", "/v1/vhosts/default/apps/app:startRecord", json=body)
        assert response.status_code == 200

        # No worker yet: the task waits in this platform's own (prefixed) media queue.
        samples = wait_for(
            lambda: (s := scrape(platform))[key("streamhub_celery_queue_length", queue="media")] >= 1 and s, 10
        )
        assert samples[key("streamhub_celery_broker_up")] == 1
        assert samples[key("streamhub_jobs", kind="record", state="ready")] == 1

        platform.start_worker()
        wait_for(lambda: metric(platform, "streamhub_jobs", kind="record", state="started") == 1, 60,
                 lambda: platform.api("POST", "/v1/vhosts/default/apps/app:records").text
                 + "\n".join(line for line in platform.log("worker").splitlines() if "record" in line)[-3000:])  # fmt: skip
        samples = scrape(platform)
        assert samples[key("streamhub_celery_queue_length", queue="media")] == 0
        assert samples[key("streamhub_jobs", kind="record", state="ready")] == 0

        assert platform.api("POST", "/v1/vhosts/default/apps/app:stopRecord", json={"id": "metrics-rec"}).ok
        wait_for(lambda: metric(platform, "streamhub_jobs", kind="record", state="stopped") == 1, 20)
    finally:
        publisher.kill()
        publisher.wait()
    # Nothing secret in any process's log either.
    for name in ("api", "engine", "worker"):
        log = platform.log(name)
        for secret in SECRETS:
            assert secret not in log, f"{secret!r} in the {name} log"
