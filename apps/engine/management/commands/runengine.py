"""`manage.py runengine`: run this machine's media engine node (RTMP 1935, media HTTP 3333), as one
process or as N worker processes behind the same ports (`--processes`, apps.engine.workers)."""

import argparse
import asyncio
import signal
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.engine import workers
from apps.engine.runner import EngineRunner, media_https_host
from media_engine import log_limits
from media_engine.node import NodeAddresses


class Command(BaseCommand):
    help = (
        "Run the media engine node: RTMP publish/play, HLS packaging and the media HTTP port. "
        "Registers the node, heartbeats live stream counters and takes commands from the API."
    )

    def add_arguments(self, parser):
        parser.add_argument("--node-id", default=settings.ENGINE_NODE_ID, help="Stable name of this node.")
        parser.add_argument("--rtmp-port", type=int, default=settings.ENGINE_RTMP_PORT)
        parser.add_argument("--http-port", type=int, default=settings.ENGINE_HTTP_PORT)
        parser.add_argument("--rtmp-host", default=settings.ENGINE_RTMP_HOST)
        parser.add_argument("--http-host", default=settings.ENGINE_HTTP_HOST)
        parser.add_argument("--srt-host", default=settings.ENGINE_SRT_HOST)
        parser.add_argument("--srt-port", type=int, default=settings.ENGINE_SRT_PORT, help="0: no SRT ingest.")
        parser.add_argument(
            "--https-port", type=int, default=settings.ENGINE_HTTPS_PORT, help="0: no HTTPS (opens with a certificate)."
        )
        parser.add_argument(
            "--https-host",
            default=None,
            help="The HTTPS port's address (default: the media HTTP host, or STREAMHUB_MEDIA_HTTP_HOST behind nginx).",
        )
        parser.add_argument(
            "--processes",
            default=settings.ENGINE_PROCESSES,
            help="Worker processes behind the same ports: 'auto' (one per CPU) or a number; 1: a single process.",
        )
        parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)  # set by the parent

    def handle(
        self,
        *args,
        node_id,
        rtmp_port,
        http_port,
        rtmp_host,
        http_host,
        srt_host,
        srt_port,
        https_port,
        https_host,
        processes,
        worker,
        **options,
    ):
        https_host = https_host or media_https_host(http_host)
        try:
            count = workers.process_count(processes)
        except ValueError as error:
            raise CommandError(f"--processes: {error}") from None
        if count > 1 and worker is None:
            self.stdout.write(
                f"engine node {node_id}: {count} worker processes on RTMP {rtmp_host}:{rtmp_port}, "
                f"media HTTP {http_host}:{http_port}"
            )
            self.stdout.flush()
            base = [sys.executable, str(settings.BASE_DIR / "manage.py"), "runengine"]
            options = [
                *("--node-id", node_id, "--rtmp-port", str(rtmp_port), "--http-port", str(http_port)),
                *("--rtmp-host", rtmp_host, "--http-host", http_host, "--srt-host", srt_host),
                *("--srt-port", str(srt_port), "--https-port", str(https_port), "--https-host", https_host),
                "--processes",
                str(count),
            ]
            raise SystemExit(workers.supervise([[*base, *options, "--worker", str(i)] for i in range(count)]))
        siblings_of = None
        ice_ports = settings.WEBRTC_ICE_PORTS
        if worker is not None:
            siblings_of, node_id = node_id, f"{node_id}.{worker}"
            srt_port = srt_port if worker == 0 else 0  # SRT ingest (UDP, no port sharing) in worker 0 only
            ice_ports = workers.split_port_range(ice_ports, worker, count)

        def private_port(base: int) -> int:
            return base + worker if base else 0

        addresses = NodeAddresses(
            rtmp_host=rtmp_host,
            rtmp_port=rtmp_port,
            http_host=http_host,
            http_port=http_port,
            srt_host=srt_host,
            srt_port=srt_port or None,
            https_port=https_port or None,
            https_host=https_host,
            reuse_port=worker is not None,
            private_host=settings.ENGINE_NODE_ADDRESS if worker is not None else None,
            private_rtmp_port=private_port(settings.ENGINE_PRIVATE_RTMP_PORT) if worker is not None else 0,
            private_http_port=private_port(settings.ENGINE_PRIVATE_HTTP_PORT) if worker is not None else 0,
        )
        log_limits.limit_repeated_tracebacks()  # out of descriptors, every heartbeat would log a traceback
        runner = EngineRunner(node_id, addresses, siblings_of=siblings_of, ice_ports=ice_ports)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, runner.stopping.set)
            await runner.run()

        self.stdout.write(f"engine node {node_id}: RTMP {rtmp_host}:{rtmp_port}, media HTTP {http_host}:{http_port}")
        asyncio.run(main())
