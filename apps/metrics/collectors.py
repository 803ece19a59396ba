"""What /metrics reports, read fresh at every scrape from the database and the Celery broker.

Each scrape costs a fixed handful of aggregate queries (per application, per engine node, per job
kind) and one Redis round trip per queue, however many streams are live: nothing loops over
streams with a query each. Labels are names only (vhost, app, node, protocol, job kind, state,
queue); no credential, address or URL appears.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from celery import Celery
from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from apps.engine.models import EngineNode
from apps.hosting.models import Application
from apps.jobs.choices import JobState
from apps.jobs.services import JOB_KINDS
from apps.streams.choices import CONNECTION_KINDS, StreamState
from apps.streams.models import Stream

logger = logging.getLogger(__name__)

LIVE = Q(streams__state=StreamState.LIVE)


def celery_queues() -> list[str]:
    """The queues StreamHub's tasks go to: the default one and every routed one."""
    queues = {settings.CELERY_TASK_DEFAULT_QUEUE}
    queues |= {route["queue"] for route in settings.CELERY_TASK_ROUTES.values() if "queue" in route}
    return sorted(queues)


def celery_queue_lengths(queues: list[str], app: Celery | None = None) -> dict[str, int] | None:
    """Messages waiting in each queue, as the broker counts them (kombu applies the
    STREAMHUB_CELERY_PREFIX key prefix and adds up the priority lists); None when the broker is down."""
    if app is None:
        from streamhub.celery import app  # the Celery app configures itself from Django settings

    try:
        with app.pool.acquire(block=True, timeout=2) as connection:
            # No retry loop: a scrape answers at once, with the broker reported down.
            connection.ensure_connection(max_retries=0, timeout=2)
            channel = connection.default_channel
            return {queue: channel.queue_declare(queue=queue).message_count for queue in queues}
    except Exception as error:  # noqa: BLE001 - any broker failure is "down", never a failed scrape
        # The type only: a broker error's text can carry the broker URL and its password.
        logger.warning("metrics: Celery broker unreachable (%s)", type(error).__name__)
        return None


class StreamHubCollector(Collector):
    """Yields StreamHub's metric families; prometheus_client calls collect() at every scrape."""

    def collect(self) -> Iterator[Metric]:
        # One query: every application with its streams' aggregates (applications with none show 0).
        applications = list(
            Application.objects.values_list("virtual_host__name", "name")
            .annotate(
                live=Count("streams", filter=LIVE),
                bytes_in=Sum("streams__total_bytes_in"),
                bytes_out=Sum("streams__total_bytes_out"),
                bits_in=Sum("streams__last_throughput_in", filter=LIVE),
                bits_out=Sum("streams__last_throughput_out", filter=LIVE),
            )
            .order_by("virtual_host__name", "name")
        )
        yield from self.application_metrics(applications)
        yield from self.connection_metrics([(vhost, app) for vhost, app, *_ in applications])
        yield from self.job_metrics()
        yield from self.call_metrics()
        yield from self.node_metrics()
        yield from self.queue_metrics()

    def application_metrics(self, applications: list[tuple]) -> Iterator[Metric]:
        labels = ["vhost", "app"]
        live = GaugeMetricFamily("streamhub_streams_live", "Live streams per application.", labels=labels)
        received = CounterMetricFamily(
            "streamhub_received_bytes", "Bytes received from publishers (every publish session).", labels=labels
        )
        sent = CounterMetricFamily(
            "streamhub_sent_bytes", "Bytes sent to viewers (every publish session).", labels=labels
        )
        throughput_in = GaugeMetricFamily(
            "streamhub_throughput_in_bits_per_second", "Incoming bitrate of the live streams.", labels=labels
        )
        throughput_out = GaugeMetricFamily(
            "streamhub_throughput_out_bits_per_second", "Outgoing bitrate of the live streams.", labels=labels
        )
        for vhost, app, live_count, bytes_in, bytes_out, bits_in, bits_out in applications:
            values = [vhost, app]
            live.add_metric(values, live_count)
            received.add_metric(values, bytes_in or 0)
            sent.add_metric(values, bytes_out or 0)
            throughput_in.add_metric(values, bits_in or 0)
            throughput_out.add_metric(values, bits_out or 0)
        yield from (live, received, sent, throughput_in, throughput_out)

    def connection_metrics(self, applications: list[tuple[str, str]]) -> Iterator[Metric]:
        viewers = GaugeMetricFamily(
            "streamhub_connections",
            "Viewers of live streams per application and protocol (as OME's stats API counts them).",
            labels=["vhost", "app", "protocol"],
        )
        # Every application shows every protocol, 0 when nobody watches.
        totals = {application: dict.fromkeys(CONNECTION_KINDS, 0) for application in applications}
        # One query for every live stream's counts (a JSON column, so added up here, not in SQL).
        for vhost, app, connections in Stream.objects.live().values_list(
            "application__virtual_host__name", "application__name", "connections"
        ):
            for kind, count in (connections or {}).items():
                if (vhost, app) in totals and kind in CONNECTION_KINDS and isinstance(count, int):
                    totals[(vhost, app)][kind] += count
        for (vhost, app), counts in totals.items():
            for kind, count in counts.items():
                viewers.add_metric([vhost, app, kind], count)
        yield viewers

    def job_metrics(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "streamhub_jobs", "Media jobs (record, push, pull, HLS dump...) per state.", labels=["kind", "state"]
        )
        for model, _task in JOB_KINDS:
            counts = dict.fromkeys(JobState.values, 0)
            counts.update(model.objects.values_list("state").annotate(count=Count("pk")).order_by())
            for state, count in counts.items():
                jobs.add_metric([model._meta.model_name, state], count)
        yield jobs

    def call_metrics(self) -> Iterator[Metric]:
        from apps.calls.choices import CallStatus
        from apps.calls.models import Call

        calls = GaugeMetricFamily("streamhub_sip_calls", "SIP calls (WCS /call/*) per call status.", labels=["status"])
        counts = dict.fromkeys(CallStatus.values, 0)
        counts.update(Call.objects.values_list("status").annotate(count=Count("pk")).order_by())
        for status, count in counts.items():
            calls.add_metric([status], count)
        yield calls

    def node_metrics(self) -> Iterator[Metric]:
        labels = ["node"]
        up = GaugeMetricFamily("streamhub_engine_node_up", "1 while the engine node heartbeats, else 0.", labels=labels)
        heartbeat = GaugeMetricFamily(
            "streamhub_engine_node_last_heartbeat_timestamp_seconds",
            "When the engine node last heartbeated (Unix time).",
            labels=labels,
        )
        streams = GaugeMetricFamily(
            "streamhub_engine_node_streams_live", "Live streams on the engine node.", labels=labels
        )
        cutoff = timezone.now().timestamp() - settings.ENGINE_NODE_TIMEOUT
        nodes = EngineNode.objects.annotate(live=Count("streams", filter=LIVE)).values_list(
            "node_id", "last_heartbeat", "live"
        )
        for node_id, last_heartbeat, live_count in nodes:
            up.add_metric([node_id], 1 if last_heartbeat.timestamp() >= cutoff else 0)
            heartbeat.add_metric([node_id], last_heartbeat.timestamp())
            streams.add_metric([node_id], live_count)
        yield from (up, heartbeat, streams)

    def queue_metrics(self) -> Iterator[Metric]:
        broker_up = GaugeMetricFamily("streamhub_celery_broker_up", "1 when the Celery broker answers the scrape.")
        lengths = GaugeMetricFamily(
            "streamhub_celery_queue_length", "Tasks waiting in each Celery queue.", labels=["queue"]
        )
        counted = celery_queue_lengths(celery_queues())
        broker_up.add_metric([], 0 if counted is None else 1)
        for queue, length in (counted or {}).items():
            lengths.add_metric([queue], length)
        yield from (broker_up, lengths)


# A registry of our own: StreamHub's metrics only (no auto-describe, so nothing is read at import).
registry = CollectorRegistry(auto_describe=False)
registry.register(StreamHubCollector())
