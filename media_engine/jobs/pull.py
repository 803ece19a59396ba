"""Pulling a stream from another server into the engine: RTSP, RTMP, and HTTP(S) files or HLS.

A `Puller` reads one of its source URLs with PyAV (a `SourceReader` thread) and publishes the
audio and video packets, without re-encoding, to the engine's RTMP publish URL, as an encoder
would: the pulled stream is then live in the engine like any published one.

Failover: when the current source sends nothing for ``no_input_timeout`` seconds, fails, or ends,
the puller opens the next URL of its list (round robin). The connection to the engine stays up
while the next source has the same kinds of tracks with the same codecs: its timestamps continue
where the last source stopped, so players, records and pushes see one unbroken stream. Otherwise
the publish is restarted.

When no URL can be opened (every one tried in a row), a ``persistent`` pull keeps trying with a
backoff (1, 2, 4 ... 30 s) and says "retrying"; any other pull ends: with `PullFailed` if it never
went live ("Failed to pull provided URL", OME's 502), or "stopped" once it had been live. A source
that is not live (an HTTP file) is paced to real time, and its end ends a pull that is not persistent.

`validate_pull_urls` checks a list of URLs for the API. Two kinds of source are for StreamHub's own
services only (their callers check them): local files (VOD played as live, paced, optionally in a
``loop``) and MPEG-TS listeners (``udp://host:port``, ``tcp://host:port?listen=1``), built with
`Puller.local`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from urllib.parse import urlsplit

import av
from av.packet import Packet
from av.stream import Stream

from media_engine import outbound
from media_engine.guarded_http import GuardedHttpOpener
from media_engine.jobs.events import MediaEvent, StateCallback
from media_engine.jobs.push import TargetFailed, TargetWriter, backoff_delay, valid_host
from media_engine.jobs.source import (
    POLL_INTERVAL,
    SourceEnd,
    SourceReader,
    SourceUnavailable,
    StopPoller,
    redact_url,
)

logger = logging.getLogger(__name__)

# Scheme -> the group it belongs to (the URLs of one pull must all be of one group).
SCHEME_GROUPS = {"rtsp": "rtsp", "rtsps": "rtsp", "rtmp": "rtmp", "rtmps": "rtmp", "http": "http", "https": "http"}
# The sourceType OME shows for a pulled stream, per group (OME itself pulls only RTSP and OVT).
SOURCE_TYPES = {"rtsp": "RtspPull", "rtmp": "RtmpPull", "http": "HttpPull", "file": "File", "mpegts": "Mpegts"}
# Sources read as fast as they answer (files, VOD playlists) are sent at real time.
PACED_GROUPS = {"http", "file"}
RTSP_OPTIONS = {"rtsp_transport": "tcp"}
# HTTP(S) sources are read through `GuardedHttpOpener` (every URL, redirect, HLS playlist and segment
# under the outbound policy); the HLS demuxer must not try to reuse FFmpeg's own HTTP connections.
HTTP_OPTIONS = {"http_persistent": "0"}
# Sources of StreamHub's own services (a file under the media root, a listener): no outbound connection.
LOCAL_GROUPS = {"file", "mpegts"}
# Probing of an RTMP source: up to FFmpeg's default 5 s (StreamHub's own streams need only 0.5 s,
# see source.INPUT_OPTIONS). An RTMP source joined just as its publisher starts sends audio first
# and its first video frame up to seconds later (encoder start-up); a 0.5 s probe found audio only,
# and the pull published an audio-only stream. FFmpeg's FLV reader keeps probing until the tracks
# that its header and metadata announce are found; one frame is enough to guess a frame rate (the
# default 20 frames held a found track back for about 2 s, and nothing here needs the guess).
# RTSP announces its tracks in the SDP; HTTP sources are files or HLS segments with every track.
RTMP_OPTIONS = {"analyzeduration": "5000000", "fpsprobesize": "1"}

# The gap left between the last packet of one source and the first of the next.
FAILOVER_GAP = Fraction(1, 25)
PROGRESS_INTERVAL = 1.0


class PullFailed(Exception):
    """None of the URLs could be pulled (OME answers 502 "Failed to pull provided URL")."""


def validate_pull_urls(urls: object) -> tuple[str, list[str]]:
    """Check the ``urls`` of a pull request: (their scheme group, the trimmed URLs). Raises
    ValueError with a message fit for an API client."""
    if not isinstance(urls, list) or not urls:
        raise ValueError("urls must be a non-empty array of URLs")
    cleaned: list[str] = []
    groups: set[str] = set()
    for url in urls:
        if not isinstance(url, str) or not url.strip():
            raise ValueError("every url must be a non-empty string")
        url = url.strip()
        if any(char.isspace() for char in url):
            raise ValueError(f"url {url!r} must not contain spaces")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise ValueError(f"url {url!r} is not valid ({error})") from None
        scheme = parts.scheme.lower()
        if scheme == "ovt":
            raise ValueError("OVT pull is not supported: use rtsp://, rtmp:// or http(s)://")
        if scheme not in SCHEME_GROUPS:
            raise ValueError(f"cannot pull {url!r}: use rtsp://, rtmp:// or http(s):// URLs")
        if not parts.hostname or not valid_host(parts.hostname):
            raise ValueError(f"url {url!r} has no valid host")
        if port == 0:
            raise ValueError(f"url {url!r} has port 0")
        groups.add(SCHEME_GROUPS[scheme])
        cleaned.append(url)
    if len(groups) > 1:
        raise ValueError("all urls must have the same scheme")
    return groups.pop(), cleaned


def source_type_of(urls: Iterable[str]) -> str:
    """OME's sourceType for a stream pulled from these URLs."""
    group, _ = validate_pull_urls(list(urls))
    return SOURCE_TYPES[group]


@dataclass
class PullProgress:
    url: str = ""  # the source being read
    received_bytes: int = 0  # from every source so far
    failovers: int = 0


@dataclass
class _Output:
    """The publish to the engine, kept across sources whose tracks fit it."""

    writer: TargetWriter
    streams: dict[str, Stream]  # kind -> output stream
    codecs: dict[str, str]  # kind -> codec name
    last_time: Fraction = Fraction(0)  # of the last packet written (seconds, output time)
    last_dts: dict[str, int] = field(default_factory=dict)  # kind -> last dts written (input time base)


class Puller:
    """Pulls ``urls`` into ``target`` (the engine's RTMP publish URL) until ``should_stop()``.

    ``on_state(state, error)`` gets "started" (live in the engine), "failover" (moved to another
    URL; ``error`` says why), "retrying" (a persistent pull found no source), "stopped" and
    "error". ``on_progress`` gets a `PullProgress` at most once a second.
    """

    def __init__(
        self,
        urls: list[str],
        target: str,
        *,
        persistent: bool = False,
        no_input_timeout: float = 3.0,
        open_timeout: float = 10.0,
        write_timeout: float = 10.0,
        should_stop: Callable[[], bool] = lambda: False,
        on_state: StateCallback | None = None,
        on_progress: Callable[[PullProgress], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_backoff: float = 30.0,
        loop: bool = False,
        group: str | None = None,
    ) -> None:
        if group is None:
            self.group, self.urls = validate_pull_urls(urls)
        else:
            self.group, self.urls = group, list(urls)
        self.loop = loop
        self.target = target
        self.persistent = persistent
        self.no_input_timeout = max(0.5, no_input_timeout)
        self.open_timeout = open_timeout
        self.write_timeout = write_timeout
        self.should_stop = should_stop
        self.on_state = on_state
        self.on_progress = on_progress
        self.sleep = sleep
        self.max_backoff = max_backoff
        self.paced = self.group in PACED_GROUPS
        self.progress = PullProgress()
        self.went_live = False
        self._output: _Output | None = None
        self._stop_requested = StopPoller(should_stop)
        self._last_progress = 0.0

    @classmethod
    def local(cls, source: str, target: str, **options) -> Puller:
        """A puller of a local file (an absolute path) or an MPEG-TS listener (udp:// or tcp://)."""
        group = "mpegts" if urlsplit(source).scheme.lower() in ("udp", "tcp") else "file"
        return cls([source], target, group=group, **options)

    # -- driving ----------------------------------------------------------------------------------

    def run(self) -> None:
        """Pull until stopped (or, unless persistent, until no source is left). Raises `PullFailed`
        if no URL could be pulled before the stream ever went live."""
        index = 0
        failed_in_row = 0
        retries = 0
        last_error = ""
        try:
            while not self._stop_requested():
                url = self.urls[index]
                try:
                    written = self.progress.received_bytes
                    ended = self._pull_from(url)
                    if self.progress.received_bytes == written:
                        raise SourceUnavailable(f"{url} sent no media")
                    failed_in_row = 0
                    retries = 0
                    if ended and self.paced and not (self.persistent or self.loop):
                        break  # a file played to its end (a live source ending is a loss: fail over)
                    if ended and self.loop:
                        continue  # the same file again, its timestamps following on
                    last_error = f"{url} ended" if ended else f"no data from {url} for {self.no_input_timeout:g} s"
                except SourceUnavailable as error:
                    failed_in_row += 1
                    last_error = str(error)
                except TargetFailed as error:
                    self._close_output()
                    failed_in_row += 1
                    last_error = f"the engine refused the stream: {error}"
                if self._stop_requested():
                    break
                index = (index + 1) % len(self.urls)
                if failed_in_row < len(self.urls):
                    if self.went_live:
                        self.progress.failovers += 1
                        self._state(MediaEvent.FAILOVER, f"{last_error}; trying {self.urls[index]}")
                    continue
                # Every URL failed in a row.
                failed_in_row = 0
                if not self.persistent:
                    if not self.went_live:
                        self._state(MediaEvent.ERROR, f"Failed to pull provided URL: {last_error}")
                        raise PullFailed(last_error)
                    break
                retries += 1
                self._close_output()
                self._state(MediaEvent.RETRYING, last_error)
                self._wait(backoff_delay(retries, 1.0, self.max_backoff))
        finally:
            self._close_output(finish=True)
        self._state(MediaEvent.STOPPED, None)

    # -- one source -------------------------------------------------------------------------------

    def _pull_from(self, url: str) -> bool:
        """Read ``url`` into the output until it ends (True), stalls or fails (False), or a stop
        (False). Raises SourceUnavailable if it cannot be opened, TargetFailed if the engine fails."""
        self.progress.url = url
        group = SCHEME_GROUPS.get(urlsplit(url).scheme.lower())
        if self.group not in LOCAL_GROUPS:
            # Before every connection, as the outbound policy says now (also for a pull created before it changed).
            try:
                outbound.check_url(url)
            except (outbound.OutboundRefused, outbound.HostUnresolved) as error:
                raise SourceUnavailable(str(error)) from None
        options = (
            {"rtsp": RTSP_OPTIONS, "http": HTTP_OPTIONS, "rtmp": RTMP_OPTIONS}.get(group)
            if self.group not in LOCAL_GROUPS
            else None
        )
        reader = SourceReader(
            url,
            open_timeout=self.open_timeout,
            stall_timeout=self.no_input_timeout,
            queue_size=256,
            options=options,
            io_open=GuardedHttpOpener(self.open_timeout) if group == "http" and self.group == "http" else None,
        ).start()
        try:
            if not reader.wait_open(self._stop_requested):
                return False
            output = self._output_for(reader.streams)
            return self._pump(reader, output)
        finally:
            reader.close()

    def _output_for(self, sources: list[Stream]) -> _Output:
        codecs = {stream.type: stream.codec_context.name for stream in sources}
        # The engine stream goes on (same publish) when the output carries every kind of track the
        # new source has, with the same codecs; a source with fewer kinds (audio not found in time)
        # feeds the tracks it has. Only a new codec or kind needs a new publish (RTMP's track list
        # is fixed once sent).
        if self._output is not None and all(self._output.codecs.get(kind) == name for kind, name in codecs.items()):
            return self._output
        if self._output is not None:
            logger.info("pull of %s: codecs %s after %s: publishing anew", redact_url(self.progress.url), codecs,
                        self._output.codecs)  # fmt: skip
        self._close_output(finish=True)
        container = av.open(self.target, "w", format="flv")
        streams: dict[str, Stream] = {}
        for stream in sources:
            if stream.type not in streams:  # one track per kind (RTMP carries one of each)
                streams[stream.type] = container.add_stream_from_template(stream)
        writer = TargetWriter(container, self.target, self.open_timeout, self.write_timeout).start()
        self._output = _Output(writer, streams, codecs)
        return self._output

    def _pump(self, reader: SourceReader, output: _Output) -> bool:
        kinds = {stream.index: stream.type for stream in reader.streams}
        chosen = {kind: index for index, kind in reversed(list(kinds.items()))}  # first track of each kind
        has_video = "video" in chosen
        origin: Fraction | None = None
        base = output.last_time + FAILOVER_GAP if output.last_dts else Fraction(0)
        paced_from: tuple[float, Fraction] | None = None
        last_input = time.monotonic()
        while not self._stop_requested():
            output.writer.check()
            if not self.went_live and output.writer.connected_at is not None:
                self.went_live = True
                self._state(MediaEvent.STARTED, None)
            item = reader.get(POLL_INTERVAL)
            if item is None:
                if time.monotonic() - last_input > self.no_input_timeout:
                    return False
                continue
            if isinstance(item, SourceEnd):
                if item.error is not None:
                    logger.info("pull of %s: %s", redact_url(self.progress.url), item.error)
                    return False
                return True
            last_input = time.monotonic()
            packet: Packet = item
            kind = kinds.get(packet.stream_index)
            if kind is None or chosen.get(kind) != packet.stream_index:
                continue
            self._received(packet.size)
            seconds = packet.dts * packet.time_base
            if origin is None:
                if has_video and not (kind == "video" and packet.is_keyframe):
                    continue  # start (and resume after a failover) on a keyframe
                origin = seconds
            if seconds < origin:
                continue
            out_time = seconds - origin + base
            if self.paced:
                paced_from = paced_from or (time.monotonic(), out_time)
                if not self._wait_until(paced_from[0] + float(out_time - paced_from[1])):
                    return False
            shift = round((origin - base) / packet.time_base)
            new_dts = packet.dts - shift
            if new_dts <= output.last_dts.get(kind, -(2**62)):
                continue  # the muxer refuses non-increasing timestamps
            pts = packet.pts if packet.pts is not None else packet.dts
            packet.dts, packet.pts = new_dts, pts - shift
            packet.stream = output.streams[kind]
            while not output.writer.put(packet, POLL_INTERVAL):
                output.writer.check()
                if self._stop_requested():
                    return False
            output.last_dts[kind] = new_dts
            output.last_time = max(output.last_time, out_time)
        return False

    # -- helpers ----------------------------------------------------------------------------------

    def _close_output(self, finish: bool = False) -> None:
        output, self._output = self._output, None
        if output is None:
            return
        if finish and output.writer.error is None:
            output.writer.finish()
        output.writer.abandon()

    def _received(self, nbytes: int) -> None:
        self.progress.received_bytes += nbytes
        now = time.monotonic()
        if self.on_progress is not None and now - self._last_progress >= PROGRESS_INTERVAL:
            self._last_progress = now
            self.on_progress(PullProgress(self.progress.url, self.progress.received_bytes, self.progress.failovers))

    def _wait_until(self, deadline: float) -> bool:
        """Sleep until ``deadline`` (monotonic); False if a stop came first."""
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stop_requested():
                return False
            self.sleep(min(remaining, POLL_INTERVAL))
        return True

    def _wait(self, seconds: float) -> None:
        self._wait_until(time.monotonic() + seconds)

    def _state(self, state: MediaEvent, error: str | None) -> None:
        if self.on_state is not None:
            self.on_state(state, error)
