"""A TLS-terminating TCP proxy: the API's HTTPS ports (OME's TLSPort 8082, WCS's 8444) in front of
the API server (Daphne), with the certificate of each vhost chosen by SNI (`media_engine.tls`).

Each port listens only while some vhost has a certificate (`TlsProxy.update`). A connection is
decrypted here and its bytes go unchanged to ``upstream`` (a loopback-only port of the API server
whose requests count as HTTPS there); bytes back are encrypted. No HTTP parsing: WebSockets and
keep-alive pass as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from media_engine.tls import CertificateTable

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
HANDSHAKE_TIMEOUT = 10.0


class TlsProxy:
    """HTTPS on ``ports`` of ``host``, forwarded to ``upstream_host:upstream_port``."""

    def __init__(
        self, certificates: CertificateTable, host: str, ports: list[int], upstream_host: str, upstream_port: int
    ) -> None:
        self.certificates = certificates
        self.host = host
        self.ports = ports
        self.upstream = (upstream_host, upstream_port)
        self._servers: dict[int, asyncio.Server] = {}
        self._connections: set[asyncio.Task] = set()

    @property
    def listening(self) -> dict[int, int]:
        """Requested port -> the port listening (they differ for port 0)."""
        return {port: server.sockets[0].getsockname()[1] for port, server in self._servers.items()}

    async def update(self) -> None:
        """Open the ports once a vhost has a certificate; close them when none has one any more."""
        if self.certificates.has_certificates and not self._servers:
            context = self.certificates.server_context()
            for port in self.ports:
                self._servers[port] = await asyncio.start_server(
                    self._serve, self.host, port, ssl=context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
                    reuse_address=True, backlog=1024,
                )  # fmt: skip
            logger.info("API HTTPS listening on %s ports %s", self.host, sorted(self.listening.values()))
        elif not self.certificates.has_certificates and self._servers:
            await self.close()
            logger.info("API HTTPS closed: no vhost has a certificate")

    async def close(self) -> None:
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        for server in servers:
            await server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            except OSError as error:
                logger.warning("API server at %s:%s unreachable: %s", *self.upstream, error)
                return
            pipes = [
                asyncio.create_task(_pipe(client_reader, upstream_writer)),
                asyncio.create_task(_pipe(upstream_reader, client_writer)),
            ]
            try:
                # Either side closing ends the connection (TLS has no half-close to pass on).
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
                upstream_writer.close()
        finally:
            client_writer.close()
            self._connections.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of file (or a broken connection)."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
