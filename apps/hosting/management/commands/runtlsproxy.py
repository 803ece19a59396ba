"""`manage.py runtlsproxy`: the API's HTTPS ports (8082 OME, 8444 WCS) with the vhosts' certificates.

Decrypts with the certificate SNI picks (`media_engine.tls`) and hands the bytes to the API server's
loopback port API_TLS_UPSTREAM_PORT (`media_engine.http.tls_proxy`). Reloads when told to over the
Channels layer (`apps.engine.commands.send_certificate_reload`: :reloadCertificate, vhost changes).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management.base import BaseCommand

from apps.engine.commands import TLS_PROXY_GROUP
from apps.hosting.services import tls_entries
from media_engine.commands import BadCommand, ReloadCertificates, parse_command
from media_engine.http.tls_proxy import TlsProxy
from media_engine.tls import CertificateTable

logger = logging.getLogger(__name__)

RETRY_PAUSE = 1.0
GROUP_REFRESH = 3600.0  # the Redis layer forgets group members after a day


class Command(BaseCommand):
    help = "Serve the API over HTTPS (OME TLSPort, WCS REST port) with each vhost's certificate, chosen by SNI."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.API_TLS_HOST)
        parser.add_argument("--port", type=int, action="append", help="HTTPS port (repeat; default API_TLS_PORTS).")
        parser.add_argument("--upstream-port", type=int, default=settings.API_TLS_UPSTREAM_PORT)

    def handle(self, *args, host, port, upstream_port, **options):
        ports = port or settings.API_TLS_PORTS
        if not ports:
            self.stdout.write("API HTTPS is off (STREAMHUB_API_TLS_PORTS is empty)")
            return
        proxy = TlsProxy(CertificateTable(), host, ports, "127.0.0.1", upstream_port)
        asyncio.run(self._run(proxy))

    async def _run(self, proxy: TlsProxy) -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        await self._reload(proxy, "*")
        listener = asyncio.create_task(self._listen(proxy))
        try:
            await stopping.wait()
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await proxy.close()

    async def _reload(self, proxy: TlsProxy, vhost: str) -> None:
        try:
            entries = await sync_to_async(tls_entries)()
        except Exception:  # noqa: BLE001 - a database hiccup keeps the certificates in use
            logger.exception("TLS certificates not reloaded")
            return
        failed = proxy.certificates.load(entries, reload=vhost)
        await proxy.update()
        state = f"listening on {proxy.listening}" if proxy.listening else "closed (no vhost has a certificate)"
        self.stdout.write(f"API HTTPS {state}; reloaded {vhost}" + (f", failed: {failed}" if failed else ""))
        self.stdout.flush()

    async def _listen(self, proxy: TlsProxy) -> None:
        layer = get_channel_layer()
        while True:
            try:
                channel = await layer.new_channel()
                await layer.group_add(TLS_PROXY_GROUP, channel)
                while True:
                    try:
                        message = await asyncio.wait_for(layer.receive(channel), GROUP_REFRESH)
                    except TimeoutError:
                        await layer.group_add(TLS_PROXY_GROUP, channel)
                        continue
                    try:
                        command = parse_command(message)
                    except BadCommand as error:
                        logger.warning("TLS proxy command refused: %s", error)
                        continue
                    if isinstance(command, ReloadCertificates):
                        await self._reload(proxy, command.vhost)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis gone: listen again, the ports go on serving
                logger.exception("TLS proxy lost the channel layer: listening again in %g s", RETRY_PAUSE)
                await asyncio.sleep(RETRY_PAUSE)
