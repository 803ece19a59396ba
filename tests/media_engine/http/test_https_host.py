"""The media HTTPS port listens where it is reachable: beside the plain media port, or, when a web server
fronts that port (the engine's HTTP then on a loopback upstream port), on the public address it is given
(`NodeAddresses.https_host`; tests/engine/test_media_https_host.py: what `runengine` gives)."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest

from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.node import EngineNode, NodeAddresses
from media_engine.tls import VhostTls
from tests.integration.conftest import free_port
from tests.tools.certificates import CertificateAuthority


def test_the_https_port_listens_on_its_own_address_when_the_plain_port_is_an_upstream_on_loopback(tmp_path):
    ca = CertificateAuthority(tmp_path)
    cert, key = ca.issue("media.example")
    https_port = free_port()

    async def main() -> None:
        config = ApplicationConfig("default", "app")
        addresses = NodeAddresses("127.0.0.1", 0, "127.0.0.1", 0, https_port=https_port, https_host="127.0.0.2")
        node = EngineNode(StaticControlPlane([config]), addresses)
        await node.start()
        try:
            node.certificates.load([VhostTls("default", ("media.example",), str(cert), str(key))])
            await node.http.update_tls_listener()
            context = ssl.create_default_context(cafile=str(ca.pem))
            reader, writer = await asyncio.open_connection(
                "127.0.0.2", https_port, ssl=context, server_hostname="media.example"
            )
            writer.write(b"GET /app/none/ts:playlist.m3u8 HTTP/1.1\r\nHost: media.example\r\nConnection: close\r\n\r\n")
            assert (await reader.readline()).startswith(b"HTTP/1.1 404")
            writer.close()
            # Not on the plain port's loopback address.
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", https_port), timeout=2).close()
        finally:
            await node.stop()

    asyncio.run(main())
