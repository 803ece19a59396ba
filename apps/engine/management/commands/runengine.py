"""`manage.py runengine`: run this machine's media engine node (RTMP 1935, media HTTP 3333)."""

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.engine.runner import EngineRunner
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

    def handle(
        self, *args, node_id, rtmp_port, http_port, rtmp_host, http_host, srt_host, srt_port, https_port, **options
    ):
        addresses = NodeAddresses(
            rtmp_host=rtmp_host,
            rtmp_port=rtmp_port,
            http_host=http_host,
            http_port=http_port,
            srt_host=srt_host,
            srt_port=srt_port or None,
            https_port=https_port or None,
        )
        log_limits.limit_repeated_tracebacks()  # out of descriptors, every heartbeat would log a traceback
        runner = EngineRunner(node_id, addresses)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, runner.stopping.set)
            await runner.run()

        self.stdout.write(f"engine node {node_id}: RTMP {rtmp_host}:{rtmp_port}, media HTTP {http_host}:{http_port}")
        asyncio.run(main())
