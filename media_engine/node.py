"""One media engine node: the stream registry with its RTMP server, HLS and LL-HLS packagers, WebRTC
(WHIP/WHEP) and media HTTP server.

`EngineNode` assembles the parts and forwards stream start/end to the control plane; the Django
command `runengine` adds heartbeats, counters in the database and API commands around it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from media_engine import log_limits
from media_engine.control import ControlPlane
from media_engine.hls.history import PacketHistory
from media_engine.hls.llhls import LlHlsPackager
from media_engine.hls.master import MasterPlaylists, PlaylistLookup
from media_engine.hls.packager import DEFAULT_IDLE_TIMEOUT
from media_engine.hls.segmenter import HlsPackager
from media_engine.hls.store import FileFolder
from media_engine.http.limits import HttpLimits
from media_engine.http.server import VIEWER_WINDOW, MediaHttpServer
from media_engine.http.siblings import SiblingProxy
from media_engine.jobs.thumbnail import ThumbnailStore, thumbnail_handler
from media_engine.registry import LiveStream, StreamKey, StreamRegistry
from media_engine.relay.mirror import Locate, RemoteStreams
from media_engine.rtmp.chunks import RtmpLimits
from media_engine.rtmp.server import RtmpServer
from media_engine.srt.ingest import SrtIngestServer
from media_engine.srt.libsrt import SrtError
from media_engine.tls import CertificateTable, VhostTls
from media_engine.webrtc.service import WebRtcService, WebRtcSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeLimits:
    """What clients of the media ports may take: connections and timeouts of the media HTTP port,
    bytes held for RTMP peers (README: "Limits on the media ports")."""

    http: HttpLimits = field(default_factory=HttpLimits)
    rtmp: RtmpLimits = field(default_factory=RtmpLimits)


@dataclass(frozen=True)
class NodeAddresses:
    rtmp_host: str = "0.0.0.0"
    rtmp_port: int = 1935
    http_host: str = "0.0.0.0"
    http_port: int = 3333
    srt_host: str = "0.0.0.0"
    srt_port: int | None = None  # None: no SRT ingest
    https_port: int | None = None  # None: no HTTPS; otherwise it listens while a vhost has a certificate
    https_host: str | None = None  # None: http_host (behind a web server on loopback: the public address)
    # Worker processes of one machine share the public ports above (SO_REUSEPORT) and each also
    # listens on private ports (0: any free one) where siblings and other nodes reach it in particular.
    reuse_port: bool = False
    private_host: str | None = None  # None: no private listeners
    private_rtmp_port: int = 0
    private_http_port: int = 0

    def private(self, port: int) -> tuple[str, int] | None:
        return (self.private_host, port) if self.private_host is not None else None


@dataclass(frozen=True)
class HlsSettings:
    """How the node packages HLS and LL-HLS: only for streams someone plays (stopping after
    ``idle_timeout`` s without a request), into files under ``files_dir`` (None: a tmpfs if any),
    starting from the last ``history_seconds`` of the stream (the shipped HLS window: 5 x 4 s).
    An HLS/LL-HLS viewer counts until ``viewer_window`` s after its last request."""

    files_dir: Path | None = None
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    history_seconds: float = 20.0
    viewer_window: float = VIEWER_WINDOW


class EngineNode:
    def __init__(
        self,
        control: ControlPlane,
        addresses: NodeAddresses | None = None,
        webrtc: WebRtcSettings | None = None,
        *,
        playlists: PlaylistLookup | None = None,
        thumbnails: ThumbnailStore | None = None,
        limits: NodeLimits | None = None,
        hls: HlsSettings | None = None,
        siblings: SiblingProxy | None = None,
        locate: Locate | None = None,
        mirror_linger: float = 10.0,
    ) -> None:
        """``playlists`` serves output profiles' master playlists; ``thumbnails`` the thumb.jpg/png
        pictures transcode jobs write (both: routes on the media HTTP port). ``siblings``: this node is
        one worker process of several behind the same public ports (HTTP requests for their streams
        are proxied to them). With ``locate``, a stream
        that another node holds is played here as a mirror (`RemoteStreams`, ``self.remote``) when an
        RTMP, WHEP, HLS or LL-HLS viewer asks for it; it ends ``mirror_linger`` s after its last one."""
        addresses = addresses or NodeAddresses()
        limits = limits or NodeLimits()
        hls = hls or HlsSettings()
        self.control = control
        self.registry = StreamRegistry()
        self.rtmp = RtmpServer(
            self.registry,
            control,
            host=addresses.rtmp_host,
            port=addresses.rtmp_port,
            limits=limits.rtmp,
            reuse_port=addresses.reuse_port,
            private=addresses.private(addresses.private_rtmp_port),
        )
        # HLS and LL-HLS are packaged only for streams someone plays (from the cached GOP on the
        # first request): an unwatched stream costs its ingest only. Their windows are files, out
        # of the Python heap (tens of MB per watched stream otherwise).
        self.hls_files = FileFolder(hls.files_dir)
        self.history = PacketHistory(self.registry, self.hls_files, hls.history_seconds)
        packaging = {
            "on_demand": True,
            "idle_timeout": hls.idle_timeout,
            "folder": self.hls_files,
            "history": self.history,
        }
        self.packager = HlsPackager.for_control_plane(self.registry, control, **packaging)
        self.llhls = LlHlsPackager.for_control_plane(self.registry, control, **packaging)
        self.certificates = CertificateTable()  # the vhosts' certificates for the HTTPS port
        self.http = MediaHttpServer(
            self.registry,
            control,
            self.packager,
            host=addresses.http_host,
            port=addresses.http_port,
            llhls=self.llhls,
            limits=limits.http,
            tls_port=addresses.https_port,
            tls_host=addresses.https_host,
            certificates=self.certificates,
            viewer_window=hls.viewer_window,
            reuse_port=addresses.reuse_port,
            private=addresses.private(addresses.private_http_port),
        )
        self.remote = RemoteStreams(self.registry, locate, linger=mirror_linger) if locate is not None else None
        self.rtmp.remote = self.http.remote = self.remote
        self.webrtc = WebRtcService(self.registry, control, webrtc)  # WHIP/WHEP on the media HTTP port
        self.webrtc.add_routes(self.http)
        self.siblings = siblings
        if siblings is not None:
            siblings.install(self.http)
            self.webrtc.session_tag = siblings.worker_tag
        if playlists is not None:
            MasterPlaylists(self.registry, playlists, self.llhls, self.packager).add_routes(self.http)
        if thumbnails is not None:
            thumbnail_path = r"/{app}/{stream}/thumb.{ext:jpg|png}"
            self.http.add_route("GET", thumbnail_path, thumbnail_handler(self.http, thumbnails), name="thumbnail")
        self.srt = (
            SrtIngestServer(self.registry, control, addresses.srt_host, addresses.srt_port)
            if addresses.srt_port is not None
            else None
        )
        self._event_tasks: set[asyncio.Task] = set()
        self.registry.on_started(lambda stream: self._notify(control.stream_started(stream)))
        self.registry.on_ended(lambda stream: self._notify(control.stream_ended(stream)))

    def _notify(self, coroutine) -> None:
        # Registry listeners are synchronous; the control plane's answers are awaited in the background.
        task = asyncio.get_running_loop().create_task(coroutine)
        self._event_tasks.add(task)
        task.add_done_callback(self._event_done)

    def _event_done(self, task: asyncio.Task) -> None:
        self._event_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("control plane event failed", exc_info=task.exception())

    async def start(self) -> None:
        # Unhandled loop errors (accept() out of descriptors, above all) logged at most once per kind
        # and interval: a flood of connections must not become gigabytes of identical tracebacks.
        log_limits.install(asyncio.get_running_loop())
        self.history.attach()
        self.packager.attach()
        self.llhls.attach()
        await self.rtmp.start()
        await self.http.start()
        if self.srt is not None:
            try:
                await self.srt.start()
            except SrtError as error:
                # The node still serves RTMP and HTTP; SRT publishers cannot connect.
                logger.error("SRT ingest not started on %s:%s: %s", self.srt.host, self.srt.port, error)
                self.srt = None
        logger.info("engine node up: RTMP on %s, media HTTP on %s", self.rtmp.port, self.http.port)

    async def load_certificates(self, entries: list[VhostTls], reload: str | None = "*") -> list[str]:
        """Take the vhosts' TLS settings (reloading the files of vhost ``reload``, "*": all) and open or
        close the HTTPS port to match; returns the vhosts whose files failed (they keep their old one)."""
        failed = self.certificates.load(entries, reload)
        await self.http.update_tls_listener()
        return failed

    async def stop(self) -> None:
        if self.remote is not None:
            await self.remote.close()
        await self.rtmp.stop()
        if self.srt is not None:
            await self.srt.stop()
        await self.webrtc.close()
        await self.http.stop()
        if self.siblings is not None:
            await self.siblings.close()
        await self.packager.close()
        await self.llhls.close()
        self.history.close()
        self.hls_files.close()
        if self._event_tasks:
            await asyncio.gather(*self._event_tasks, return_exceptions=True)

    def stop_stream(self, key: StreamKey) -> bool:
        """Disconnect the publisher of ``key``; False if it is not live here."""
        stream = self.registry.get(key)
        if stream is None:
            return False
        stream.stop()
        return True

    def send_timed_metadata(self, key: StreamKey, id3: bytes) -> bool:
        """Insert an ID3 tag into the LL-HLS (next part) and HLS (next packet) output of ``key``.

        False if the stream is not live here. Both outputs are one muxed rendition, so OME's
        ``eventType`` (event, video, audio) lands in the same place whatever it says.
        """
        if self.registry.get(key) is None:
            return False
        for packager in (self.llhls, self.packager):
            packager.add_timed_metadata(key, id3)  # (starts packaging an unwatched stream)
        return True

    def set_hls(self, key: StreamKey, enabled: bool) -> bool:
        """Package HLS and LL-HLS of ``key`` or stop doing so (WCS /hls/startup, /hls/terminate)
        until it is published again; False if the stream is not live here."""
        packagers = (self.packager, self.llhls)
        done = [packager.resume(key) if enabled else packager.pause(key) for packager in packagers]
        return all(done)

    def live_streams(self) -> list[LiveStream]:
        return self.registry.streams()
