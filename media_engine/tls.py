"""TLS for the HTTPS ports (media 3334, API 8082/8444): one certificate per virtual host, chosen by SNI.

`CertificateTable` holds every vhost's host names and, for those with a ``tls`` block, an
`ssl.SSLContext` loaded from its files. `CertificateTable.server_context` is the context a listener
is given: its SNI callback picks the context of the vhost the requested name belongs to (exact name
over pattern, longer pattern over shorter, as the media and API ports route requests). A name that
belongs to no vhost with a certificate is refused with a handshake alert (``unrecognized_name``),
never answered with another vhost's certificate. `CertificateTable.load` swaps contexts in place,
so the next handshake sees a reloaded certificate without a restart; a vhost whose files fail to
load keeps the certificate it had (OME's ``:reloadCertificate`` rule).
"""

from __future__ import annotations

import fnmatch
import logging
import ssl
import tempfile
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Every vhost name refused by an SNI callback: the alert the client sees.
REFUSAL = ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME


@dataclass(frozen=True)
class VhostTls:
    """One vhost as the TLS ports see it: its host names and certificate files (empty: no TLS)."""

    vhost: str
    host_names: tuple[str, ...]
    cert_path: str = ""
    key_path: str = ""
    chain_path: str = ""

    @property
    def has_certificate(self) -> bool:
        return bool(self.cert_path and self.key_path)


def load_context(entry: VhostTls) -> ssl.SSLContext:
    """A server context with the vhost's certificate, key and chain; `OSError`/`ssl.SSLError` if they don't load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if not entry.chain_path:
        context.load_cert_chain(entry.cert_path, entry.key_path)
        return context
    # Python loads a chain only from the certificate's own file: serve certificate + chain together.
    with open(entry.cert_path, "rb") as cert, open(entry.chain_path, "rb") as chain:
        pem = cert.read().rstrip(b"\n") + b"\n" + chain.read()
    with tempfile.NamedTemporaryFile(suffix=".pem") as combined:
        combined.write(pem)
        combined.flush()
        context.load_cert_chain(combined.name, entry.key_path)
    return context


class CertificateTable:
    """The vhosts' certificates by host name, shared by every TLS listener of a process."""

    def __init__(self) -> None:
        self._entries: list[VhostTls] = []
        self._contexts: dict[str, ssl.SSLContext] = {}  # vhost name -> its loaded certificate

    @property
    def has_certificates(self) -> bool:
        return bool(self._contexts)

    def load(self, entries: list[VhostTls], reload: str | None = None) -> list[str]:
        """Take the vhosts as they are now. Certificates are (re)loaded from their files for vhost
        ``reload`` ("*": all), and for vhosts not loaded before; the others keep what they have, so a
        file replaced without a reload is not served yet. Returns the vhosts whose files failed."""
        contexts: dict[str, ssl.SSLContext] = {}
        failed = []
        for entry in entries:
            previous = self._contexts.get(entry.vhost)
            if not entry.has_certificate:
                continue
            if previous is not None and reload not in ("*", entry.vhost):
                contexts[entry.vhost] = previous
                continue
            try:
                contexts[entry.vhost] = load_context(entry)
            except (OSError, ssl.SSLError) as error:
                failed.append(entry.vhost)
                logger.error("TLS certificate of vhost %s not loaded: %s", entry.vhost, error)
                if previous is not None:
                    contexts[entry.vhost] = previous  # keep serving the old one
        self._entries = list(entries)
        self._contexts = contexts
        return failed

    def vhost_for(self, server_name: str) -> str | None:
        """The vhost ``server_name`` belongs to: an exact host name wins over a pattern, a longer
        pattern over a shorter one (so ``*.example.com`` beats ``*``)."""
        name = server_name.lower()
        best: tuple[int, int, str] | None = None
        for entry in self._entries:
            for pattern in entry.host_names:
                if not fnmatch.fnmatchcase(name, pattern.lower()):
                    continue
                rank = (0 if "*" in pattern or "?" in pattern else 1, len(pattern))
                if best is None or rank > best[:2]:
                    best = (*rank, entry.vhost)
        return best[2] if best else None

    def context_for(self, server_name: str | None) -> ssl.SSLContext | None:
        """The context of the vhost ``server_name`` belongs to, or None (no SNI, no vhost, no TLS)."""
        if not server_name:
            return None
        vhost = self.vhost_for(server_name)
        return self._contexts.get(vhost) if vhost is not None else None

    def server_context(self) -> ssl.SSLContext:
        """The context for a listener: it holds no certificate itself, its SNI callback lends one."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.sslobject_class = _AlertSendingSSLObject
        context.sni_callback = self._select
        return context

    def _select(self, connection: ssl.SSLObject, server_name: str | None, _base: ssl.SSLContext) -> int | None:
        chosen = self.context_for(server_name)
        if chosen is None:
            logger.debug("TLS handshake for %r refused: no vhost with a certificate has that name", server_name)
            return REFUSAL
        connection.context = chosen
        return None


class _AlertSendingSSLObject(ssl.SSLObject):
    """asyncio drops what OpenSSL wrote when a handshake fails, and with it the alert that says why
    (a refused SNI name would look like a network error). The first failure is turned into "want
    read": asyncio then sends the pending alert, and the peer closes; the next call fails for real."""

    _handshake_error: ssl.SSLError | None = None

    def do_handshake(self) -> None:
        if self._handshake_error is not None:
            raise self._handshake_error
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as error:
            self._handshake_error = error
            raise ssl.SSLWantReadError("handshake refused; alert sent") from error
