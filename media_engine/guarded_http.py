"""HTTP(S) sources read under the outbound policy: PyAV's ``io_open`` hook hands every URL FFmpeg
opens for an HTTP pull to `GuardedHttpOpener` instead of FFmpeg's own HTTP client.

FFmpeg's client would resolve names again after our check, follow redirects to anywhere, and open
whatever an HLS playlist lists (a public playlist can name segments at 169.254.169.254). Here every
connection, the source URL, each redirect hop, each playlist reload and each segment, is resolved,
checked by the `OutboundPolicy`, and made to exactly the address that was checked (TLS still
verifies the certificate of the name). Seeking (MP4 files with the index at the end) uses range
requests when the server offers them.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
from urllib.parse import urljoin, urlsplit

from media_engine.outbound import OutboundPolicy, OutboundRefused, current_policy

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
USER_AGENT = "StreamHub"


class _Pinned:
    """Connects to the addresses the policy checked (none: a name the allow-list trusts, resolved normally)."""

    addresses: list[str]

    def connect(self) -> None:
        if not self.addresses:
            super().connect()
            return
        last: OSError | None = None
        for address in self.addresses:
            try:
                self.sock = socket.create_connection((address, self.port), self.timeout)
                break
            except OSError as error:
                last = error
        else:
            raise last or OSError(f"cannot connect to {self.host}")
        self._wrap()

    def _wrap(self) -> None:
        pass


class _PinnedHTTPConnection(_Pinned, http.client.HTTPConnection):
    def __init__(self, host: str, port: int | None, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses


class _PinnedHTTPSConnection(_Pinned, http.client.HTTPSConnection):
    def __init__(self, host: str, port: int | None, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.addresses = addresses

    def _wrap(self) -> None:
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


class GuardedHttpFile(io.RawIOBase):
    """One HTTP(S) resource as a read-only file for PyAV: redirects followed hop by hop under the
    policy; seekable when the server answers range requests."""

    def __init__(self, url: str, policy: OutboundPolicy, timeout: float) -> None:
        super().__init__()
        self.url = url
        self.policy = policy
        self.timeout = timeout
        self.position = 0
        self.size: int | None = None
        self.ranges = False
        self._connection: http.client.HTTPConnection | None = None
        self._response: http.client.HTTPResponse | None = None
        self._open(0)

    def _open(self, offset: int) -> None:
        self._close_response()
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme not in ("http", "https"):
                raise OutboundRefused(f"{scheme}:// is not an HTTP source")
            addresses = self.policy.check_url(url)  # OutboundRefused, HostUnresolved (an OSError)
            kind = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
            connection = kind(parts.hostname or "", parts.port, addresses, self.timeout)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            try:
                connection.request("GET", target, headers=headers)
                response = connection.getresponse()
            except BaseException:
                connection.close()
                raise
            location = response.getheader("Location")
            if response.status in REDIRECTS and location:
                response.close()
                connection.close()
                url = urljoin(url, location)  # checked on the next round
                continue
            if response.status not in (200, 206):
                response.close()
                connection.close()
                raise OSError(f"{urlsplit(url).hostname} answered {response.status} {response.reason}")
            self.url = url  # later range requests go to where the redirects led
            self._connection, self._response = connection, response
            self._learn_size(response, offset)
            if offset and response.status == 200:  # the server ignored the range: skip to it
                self.position = 0
                self._skip(offset)
            self.position = offset
            return
        raise OSError(f"more than {MAX_REDIRECTS} redirects from {self.url}")

    def _learn_size(self, response: http.client.HTTPResponse, offset: int) -> None:
        self.ranges = (
            self.ranges or response.getheader("Accept-Ranges", "").lower() == "bytes" or response.status == 206
        )
        content_range = response.getheader("Content-Range", "")
        if response.status == 206 and "/" in content_range:
            total = content_range.rsplit("/", 1)[1]
            self.size = int(total) if total.isdigit() else self.size
        elif response.status == 200 and (length := response.getheader("Content-Length", "")).isdigit():
            self.size = int(length)

    def _skip(self, count: int) -> None:
        while count > 0:
            chunk = self._response.read(min(count, 65536))
            if not chunk:
                break
            count -= len(chunk)

    # -- the file interface PyAV uses ------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._response is None:
            return 0
        count = self._response.readinto(buffer)
        self.position += count
        return count

    def seekable(self) -> bool:
        return self.ranges and self.size is not None

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self.position
        elif whence == io.SEEK_END:
            if self.size is None:
                raise OSError("the size of the source is unknown")
            offset += self.size
        if offset != self.position:
            if not self.seekable():
                raise OSError("the source cannot seek")
            self._open(offset)
        return self.position

    def tell(self) -> int:
        return self.position

    def _close_response(self) -> None:
        if self._response is not None:
            self._response.close()
        if self._connection is not None:
            self._connection.close()
        self._response = self._connection = None

    def close(self) -> None:
        self._close_response()
        super().close()


class GuardedHttpOpener:
    """PyAV's ``io_open``: every URL FFmpeg opens (the source, HLS playlists and segments) as a
    `GuardedHttpFile` under the policy (this process's when none is given)."""

    def __init__(self, timeout: float = 10.0, policy: OutboundPolicy | None = None) -> None:
        self.timeout = timeout
        self.policy = policy

    def __call__(self, url: str, flags: int, options: dict) -> GuardedHttpFile:
        return GuardedHttpFile(url, self.policy or current_policy(), self.timeout)
