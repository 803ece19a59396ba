"""Pushing a live stream to another server without re-encoding: RTMP, MPEG-TS (UDP/TCP) or SRT.

A `Pusher` plays the source (the engine's RTMP URL, like any client) and re-publishes its audio
and video packets to the target:

* ``rtmp``: FLV over RTMP(S) with PyAV; the target is ``url + "/" + stream_key`` when a stream
  key is given, as OME joins them.
* ``mpegts``: an MPEG-TS stream to ``udp://host:port`` or ``tcp://host:port`` with PyAV.
* ``srt``: MPEG-TS over SRT (caller mode unless the URL says otherwise). PyAV's bundled FFmpeg
  usually has no libsrt, so unless it does the push runs Debian's ``/usr/bin/ffmpeg -c copy`` as a
  supervised subprocess (`ffmpeg_has_protocol`, `pyav_has_protocol`).

`Pusher.run` blocks. When the target fails (refused, dropped) it reports "retrying" with the error
through ``on_state``, waits (1 s, 2 s, 4 s ... up to 30 s) and connects again with a fresh read of
the source, until ``should_stop()``; the end of the source ends the push ("stopped").
`validate_push_target` checks a protocol and URL for the API.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from fractions import Fraction
from ipaddress import ip_address
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import av
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream

from media_engine import outbound
from media_engine.internal_auth import redact_text
from media_engine.jobs.audio_control import AudioControl, AudioRewriter
from media_engine.jobs.events import MediaEvent, StateCallback
from media_engine.jobs.source import (
    MEDIA_KINDS,
    POLL_INTERVAL,
    SourceEnd,
    SourceReader,
    SourceUnavailable,
    StopPoller,
    check_kinds,
    open_failure,
    redact_url,
)

__all__ = [
    "PROTOCOLS",
    "PushProgress",
    "Pusher",
    "SourceUnavailable",
    "TargetFailed",
    "backoff_delay",
    "ffmpeg_has_protocol",
    "join_stream_key",
    "pyav_has_protocol",
    "valid_host",
    "validate_push_target",
    "TargetWriter",
]

logger = logging.getLogger(__name__)

# Push protocol -> the URL schemes it accepts and the container it sends.
PROTOCOLS: dict[str, tuple[str, ...]] = {"rtmp": ("rtmp", "rtmps"), "mpegts": ("udp", "tcp"), "srt": ("srt",)}
FORMATS = {"rtmp": "flv", "mpegts": "mpegts", "srt": "mpegts"}

DEBIAN_FFMPEG = "/usr/bin/ffmpeg"
PROGRESS_INTERVAL = 1.0
# A connection that carried the stream this long resets the backoff to its first step.
STABLE_AFTER = 10.0
# MPEG-TS over UDP: seven TS packets per datagram, as receivers expect.
UDP_PACKET_SIZE = 1316


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class TargetFailed(Exception):
    """The target refused the connection or dropped it."""


# -- validation -----------------------------------------------------------------------------------


def validate_push_target(protocol: str, url: str) -> str:
    """Check that ``url`` fits the push ``protocol``; the URL (trimmed). Raises ValueError with a
    message fit for an API client (the text of a 400)."""
    if not isinstance(protocol, str) or protocol.strip().lower() not in PROTOCOLS:
        raise ValueError(f"unknown push protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    protocol = protocol.strip().lower()
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"a {protocol} push needs a target URL")
    url = url.strip()
    schemes = PROTOCOLS[protocol]
    example = {
        "rtmp": "rtmp://host[:port]/app[/stream]",
        "mpegts": "udp://host:port or tcp://host:port",
        "srt": "srt://host:port",
    }[protocol]
    if any(char.isspace() for char in url):
        raise ValueError(f"target URL {url!r} must not contain spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"target URL {url!r} is not valid ({error}); expected {example}") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        allowed = " or ".join(f"{name}://" for name in schemes)
        raise ValueError(f"a {protocol} push needs a {allowed} URL, not {url!r} (expected {example})")
    host = parts.hostname
    if not host or not valid_host(host):
        raise ValueError(f"target URL {url!r} has no valid host (expected {example})")
    if port is None and protocol != "rtmp":
        raise ValueError(f"target URL {url!r} needs a port (expected {example})")
    if port == 0:
        raise ValueError(f"target URL {url!r} has port 0 (expected {example})")
    if protocol == "rtmp" and not parts.path.strip("/"):
        raise ValueError(f"target URL {url!r} needs an application path (expected {example})")
    return url


def valid_host(host: str) -> bool:
    try:
        ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(_HOST_LABEL.match(label) for label in labels)


def join_stream_key(url: str, stream_key: str | None) -> str:
    """The target of an RTMP push: ``url + "/" + stream_key`` as OME joins them (no key: ``url``)."""
    if not stream_key:
        return url
    return url.rstrip("/") + "/" + stream_key.lstrip("/")


def backoff_delay(failures: int, first: float = 1.0, cap: float = 30.0) -> float:
    """The wait after the ``failures``-th failure in a row: 1, 2, 4, 8 ... seconds, at most ``cap``."""
    return min(cap, first * 2 ** max(0, min(failures - 1, 32)))


# -- protocol support -----------------------------------------------------------------------------


@functools.cache
def pyav_has_protocol(name: str) -> bool:
    """Whether PyAV's FFmpeg has the protocol ``name``, for protocols that check their address
    before any I/O, such as srt (PyAV has no list of protocols, so this opens ``name://:0``:
    "protocol not found" if it is missing, "port missing" at once otherwise)."""
    try:
        av.open(f"{name}://:0", "r", timeout=1.0).close()
    except av.ProtocolNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - any other failure means the protocol exists
        return True
    return True


@functools.cache
def ffmpeg_has_protocol(name: str, ffmpeg: str = DEBIAN_FFMPEG) -> bool:
    """Whether the ffmpeg executable can write to the protocol ``name``."""
    if shutil.which(ffmpeg) is None:
        return False
    try:
        listing = subprocess.run(
            [ffmpeg, "-hide_banner", "-protocols"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    _, _, outputs = listing.partition("Output:")
    return name in outputs.split()


# -- pusher ---------------------------------------------------------------------------------------


@dataclass
class PushProgress:
    """What a push sent, as OME reports it: this connection's and all connections' bytes and time."""

    sequence: int  # connections made so far (1 for the first)
    sent_bytes: int = 0
    sent_time_ms: int = 0
    total_sent_bytes: int = 0
    total_sent_time_ms: int = 0


class _Stopped(Exception):
    """should_stop() said so while waiting."""


class Pusher:
    """Re-publishes ``source_url`` to a ``protocol`` target until ``should_stop()`` or the source ends.

    ``on_state(state, error)`` gets "started" (connected to the target), "retrying" (with the
    error; a new attempt follows the backoff), "stopped" (stop requested or source ended) and
    "error" (fatal, just before ``run`` raises). ``on_progress`` gets a `PushProgress` at most once
    a second. ``sleep`` waits between attempts (in steps of at most 0.25 s, asking
    ``should_stop`` in between). ``use_ffmpeg`` forces (True) or forbids (False) the ffmpeg
    subprocess; None uses it only for SRT when PyAV lacks SRT. With ``audio_control`` the audio is
    re-encoded (`AudioRewriter`) so that it can be muted or mixed with a sound while pushed.
    """

    def __init__(
        self,
        source_url: str | Callable[[], str],
        protocol: str,
        url: str,
        *,
        stream_key: str | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        on_state: StateCallback | None = None,
        on_progress: Callable[[PushProgress], None] | None = None,
        open_timeout: float = 10.0,
        stall_timeout: float = 15.0,
        write_timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        first_backoff: float = 1.0,
        max_backoff: float = 30.0,
        track_filter: Iterable[str] | None = None,
        use_ffmpeg: bool | None = None,
        ffmpeg: str = DEBIAN_FFMPEG,
        audio_control: Callable[[], AudioControl] | None = None,
    ) -> None:
        self.protocol = protocol.strip().lower() if isinstance(protocol, str) else protocol
        url = validate_push_target(self.protocol, url)
        # A callable gives a fresh URL for every connection (its job token may expire on long pushes).
        self._source_url_of = source_url if callable(source_url) else (lambda: source_url)
        self.source_url = self._source_url_of()
        self.target = join_stream_key(url, stream_key) if self.protocol == "rtmp" else url
        self.should_stop = should_stop
        self.on_state = on_state
        self.on_progress = on_progress
        self.open_timeout = open_timeout
        self.stall_timeout = stall_timeout
        self.write_timeout = write_timeout
        self.sleep = sleep
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.kinds = check_kinds(track_filter)
        self.ffmpeg = ffmpeg
        self.audio_control = audio_control
        if use_ffmpeg is None:
            use_ffmpeg = self.protocol == "srt" and not pyav_has_protocol("srt") and audio_control is None
        if use_ffmpeg and audio_control is not None:
            raise ValueError("audio control needs the PyAV pusher, not the ffmpeg subprocess")
        self.use_ffmpeg = use_ffmpeg
        self.progress = PushProgress(sequence=0)
        self.failures = 0  # failed attempts in a row
        self._stop_requested = StopPoller(should_stop)
        self._last_progress = 0.0

    @property
    def output_url(self) -> str:
        """The URL actually written to (UDP gets a TS-friendly datagram size unless it has one)."""
        parts = urlsplit(self.target)
        if parts.scheme.lower() == "udp":
            query = parse_qsl(parts.query, keep_blank_values=True)
            if not any(key == "pkt_size" for key, _ in query):
                query.append(("pkt_size", str(UDP_PACKET_SIZE)))
                return urlunsplit(parts._replace(query=urlencode(query)))
        return self.target

    # -- driving ----------------------------------------------------------------------------------

    def run(self) -> None:
        """Push until stopped or the source ends. Raises `SourceUnavailable` if the source cannot be
        opened at the first attempt, RuntimeError if the protocol cannot be pushed at all."""
        scheme = urlsplit(self.target).scheme.lower()
        if self.use_ffmpeg and not ffmpeg_has_protocol(scheme, self.ffmpeg):
            message = f"cannot push to {scheme}://: {self.ffmpeg} is missing or has no {scheme} output"
            self._state(MediaEvent.ERROR, message)
            raise RuntimeError(message)
        if not self.use_ffmpeg and scheme == "srt" and not pyav_has_protocol(scheme):
            message = f"cannot push to {scheme}://: PyAV's FFmpeg has no {scheme} protocol"
            self._state(MediaEvent.ERROR, message)
            raise RuntimeError(message)
        attempt = self._attempt_ffmpeg if self.use_ffmpeg else self._attempt_pyav
        try:
            while not self._stop_requested():
                try:
                    self._check_target()
                    self.source_url = self._source_url_of()
                    attempt()
                    break  # the source ended, or a stop was requested
                except TargetFailed as error:
                    self._failed(error)
                except SourceUnavailable as error:
                    if self.progress.sequence == 0 and self.failures == 0:
                        self._state(MediaEvent.ERROR, str(error))
                        raise
                    logger.info("push of %s: the source is gone (%s)", redact_url(self.source_url), error)
                    break
        except _Stopped:
            pass
        except SourceUnavailable:
            raise
        except Exception as error:
            self._state(MediaEvent.ERROR, str(error) or type(error).__name__)
            raise
        self._state(MediaEvent.STOPPED, None)

    def _check_target(self) -> None:
        """Before every connection, as the outbound policy says now: a refused target ends the push
        (OutboundRefused, also for a push created before the policy changed); a name that does not
        resolve is a failed connection, retried."""
        try:
            outbound.check_url(self.target)
        except outbound.HostUnresolved as error:
            raise TargetFailed(str(error)) from None

    def _failed(self, error: TargetFailed) -> None:
        self.failures += 1
        delay = backoff_delay(self.failures, self.first_backoff, self.max_backoff)
        logger.warning(
            "push of %s to %s failed (%s); retrying in %g s",
            redact_url(self.source_url),
            redact_url(self.target),
            error,
            delay,
        )
        self._state(MediaEvent.RETRYING, str(error))
        self._wait(delay)

    def _wait(self, seconds: float) -> None:
        remaining = seconds
        while remaining > 0:
            if self._stop_requested():
                raise _Stopped
            step = min(remaining, POLL_INTERVAL)
            self.sleep(step)
            remaining -= step
        if self._stop_requested():
            raise _Stopped

    def _state(self, state: MediaEvent, error: str | None) -> None:
        if self.on_state is not None:
            self.on_state(state, error)

    def _connected(self) -> float:
        self.progress = replace(self.progress, sequence=self.progress.sequence + 1, sent_bytes=0, sent_time_ms=0)
        self._last_progress = time.monotonic()
        self._state(MediaEvent.STARTED, None)
        return time.monotonic()

    def _session_ended(self, connected_at: float | None) -> None:
        if connected_at is not None and time.monotonic() - connected_at >= STABLE_AFTER:
            self.failures = 0

    def _count(self, nbytes: int, duration_ms: int) -> None:
        progress = self.progress
        progress.total_sent_bytes += nbytes
        progress.sent_bytes += nbytes
        grown = max(0, duration_ms - progress.sent_time_ms)
        progress.sent_time_ms += grown
        progress.total_sent_time_ms += grown
        now = time.monotonic()
        if self.on_progress is not None and now - self._last_progress >= PROGRESS_INTERVAL:
            self._last_progress = now
            self.on_progress(replace(progress))

    # -- PyAV -------------------------------------------------------------------------------------

    def _attempt_pyav(self) -> float | None:
        """One connection: read the source, write the target. Returns when the source ended or a
        stop was requested; raises TargetFailed / SourceUnavailable."""
        reader = SourceReader(
            self.source_url, open_timeout=self.open_timeout, stall_timeout=self.stall_timeout, kinds=self.kinds
        ).start()
        writer: TargetWriter | None = None
        connected_at: float | None = None
        try:
            if not reader.wait_open(self._stop_requested):
                return None
            # No I/O yet: PyAV connects when the header is written, in the writer thread.
            output = av.open(self.output_url, "w", format=FORMATS[self.protocol])
            rewriter: AudioRewriter | None = None
            try:
                streams: dict[int, Stream] = {}
                for stream in reader.streams:
                    if stream.type == "audio" and self.audio_control is not None and rewriter is None:
                        rewriter = AudioRewriter(stream, output, self.audio_control)
                        streams[stream.index] = rewriter.stream
                    else:
                        streams[stream.index] = output.add_stream_from_template(stream)
            except Exception:
                _close_quietly(output)
                raise
            writer = TargetWriter(output, self.target, self.open_timeout, self.write_timeout).start()
            connected_at = self._pump(reader, writer, streams, rewriter)
            writer.finish()
            if connected_at is not None:
                self._count(writer.sent_bytes - self.progress.sent_bytes, writer.sent_time_ms)
            return connected_at
        finally:
            reader.close()
            if writer is not None:
                writer.abandon()
                connected_at = connected_at or writer.connected_at
            self._session_ended(connected_at)

    def _pump(
        self,
        reader: SourceReader,
        writer: TargetWriter,
        streams: dict[int, Stream],
        rewriter: AudioRewriter | None = None,
    ) -> float | None:
        """Hand the source's packets to the writer until the source ends or a stop; the time the
        target connection came up (None if it did not)."""
        has_video = any(stream.type == "video" for stream in reader.streams)
        kinds = {stream.index: stream.type for stream in reader.streams}
        origin: Fraction | None = None
        last_dts: dict[int, int] = {}
        connected_at: float | None = None
        held: list[Packet] = []  # packets the writer had no room for yet
        while not self._stop_requested():
            writer.check()
            if connected_at is None and writer.connected_at is not None:
                connected_at = self._connected()
            if connected_at is not None:
                self._count(writer.sent_bytes - self.progress.sent_bytes, writer.sent_time_ms)
            if held:
                while held and writer.put(held[0], POLL_INTERVAL):
                    held.pop(0)
                continue
            item = reader.get(POLL_INTERVAL)
            if item is None:
                continue
            if isinstance(item, SourceEnd):
                if item.error is not None:
                    logger.warning("push of %s: source lost: %s", redact_url(self.source_url), item.error)
                return connected_at
            packet = item
            if packet.stream_index not in streams or packet.dts is None:
                continue
            output_stream = streams[packet.stream_index]
            if origin is None:
                if has_video and not (packet.is_keyframe and kinds[packet.stream_index] == "video"):
                    if rewriter is not None and output_stream is rewriter.stream:
                        rewriter.process(packet)  # keeps the decoder going; nothing is sent yet
                    continue  # start the target on a keyframe
                origin = packet.dts * packet.time_base
            if rewriter is not None and output_stream is rewriter.stream:
                outgoing = rewriter.process(packet)
            else:
                outgoing = [packet]
            for out in outgoing:
                if out.dts is None:
                    continue
                if out.dts * out.time_base < origin:
                    continue
                shift = round(origin / out.time_base)
                new_dts = out.dts - shift
                if new_dts <= last_dts.get(output_stream.index, -(2**62)):
                    continue  # the muxer refuses non-increasing timestamps
                last_dts[output_stream.index] = new_dts
                pts = out.pts if out.pts is not None else out.dts
                out.dts, out.pts = new_dts, pts - shift
                out.stream = output_stream
                if held or not writer.put(out, 0):
                    held.append(out)
        return connected_at

    # -- ffmpeg subprocess ------------------------------------------------------------------------

    def _ffmpeg_command(self) -> list[str]:
        timeout_us = str(int(self.stall_timeout * 1_000_000))
        maps: list[str] = []
        for kind in self.kinds or MEDIA_KINDS:
            maps += ["-map", f"0:{kind[0]}?"]
        return [
            self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-nostats",
            "-progress", "pipe:1", "-rw_timeout", timeout_us, "-i", self.source_url,
            *maps, "-c", "copy", "-f", FORMATS[self.protocol], self.output_url,
        ]  # fmt: skip

    def _attempt_ffmpeg(self) -> float | None:
        process = _FfmpegProcess(self._ffmpeg_command())
        connected_at: float | None = None
        try:
            while True:
                code = process.poll()
                if connected_at is None and process.total_size > 0:
                    connected_at = self._connected()
                if connected_at is not None:
                    self._count(process.total_size - self.progress.sent_bytes, process.out_time_ms)
                if code is not None:
                    break
                if self._stop_requested():
                    process.stop()
                    return connected_at
                time.sleep(POLL_INTERVAL)
            if code == 0:
                return connected_at  # the source ended
            errors = process.errors()
            source_errors = [line for line in errors if line.startswith(f"{self.source_url}: ")]
            if source_errors and connected_at is None:
                reason = open_failure(self.source_url, source_errors[-1].split(": ", 1)[1])
                raise SourceUnavailable(f"cannot open {redact_url(self.source_url)}: {reason}")
            detail = f"ffmpeg exited with code {code}"
            if errors:
                detail = redact_text(errors[-1])
            raise TargetFailed(f"sending to {redact_url(self.target)} failed: {detail}")
        finally:
            process.stop()
            self._session_ended(connected_at)


class TargetWriter:
    """Connects to the target and writes its packets in a thread of its own, so that a target that
    stops reading cannot hold up the job thread: `check` raises TargetFailed when it failed, or
    when it took no packet for ``write_timeout`` seconds (the thread is then left behind, and
    closes the output whenever the blocked write returns)."""

    def __init__(self, output: OutputContainer, target: str, open_timeout: float, write_timeout: float) -> None:
        self.output = output
        self.target = target
        self.open_timeout = open_timeout
        self.write_timeout = write_timeout
        self.connected_at: float | None = None
        self.sent_bytes = 0
        self.sent_time_ms = 0
        self.error: TargetFailed | None = None
        self._origin: Fraction | None = None
        self._created = time.monotonic()
        self._last_write = self._created
        # When the queue last went from empty to holding a packet: after a pause of the source (a
        # failover to another URL, a publisher that paused) the target is not late for the time
        # nobody gave it anything.
        self._fed_at = self._created
        self._queue: queue.Queue[Packet | None] = queue.Queue(512)
        self._abandoned = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"push-writer {redact_url(target)}", daemon=True)

    def start(self) -> TargetWriter:
        self._thread.start()
        return self

    def put(self, packet: Packet, timeout: float) -> bool:
        """Queue a packet; False if there was no room within ``timeout`` seconds."""
        was_empty = self._queue.empty()
        try:
            self._queue.put(packet, timeout=timeout) if timeout > 0 else self._queue.put_nowait(packet)
        except queue.Full:
            return False
        if was_empty:
            self._fed_at = time.monotonic()
        return True

    def check(self) -> None:
        """Raise TargetFailed if the target failed or stopped taking data."""
        if self.error is not None:
            raise self.error
        now = time.monotonic()
        if self.connected_at is None:
            if now - self._created > self.open_timeout + 1:
                raise TargetFailed(f"cannot connect to {redact_url(self.target)}: timed out")
        elif not self._queue.empty() and now - max(self._last_write, self._fed_at) > self.write_timeout:
            raise TargetFailed(
                f"sending to {redact_url(self.target)} failed: it took no data for {self.write_timeout:g} s"
            )

    def finish(self, wait: float = 5.0) -> None:
        """Send what is queued, close the output (trailer) and wait up to ``wait`` seconds for it."""
        deadline = time.monotonic() + wait
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:
                self._queue.put(None, timeout=POLL_INTERVAL)
                break
            except queue.Full:
                continue
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def abandon(self) -> None:
        """Drop what is queued; the thread closes the output as soon as it can."""
        self._abandoned.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass

    def _run(self) -> None:
        try:
            try:
                self.output.start_encoding()  # connects and writes the header
            except (av.FFmpegError, OSError) as error:
                self.error = TargetFailed(f"cannot connect to {redact_url(self.target)}: {_reason(error)}")
                return
            self._last_write = self.connected_at = time.monotonic()
            while not self._abandoned.is_set():
                packet = self._queue.get()
                if packet is None:
                    break
                size, dts = packet.size, packet.dts * packet.time_base
                try:
                    self.output.mux(packet)
                except (av.FFmpegError, OSError) as error:
                    self.error = TargetFailed(f"sending to {redact_url(self.target)} failed: {_reason(error)}")
                    return
                self._last_write = time.monotonic()
                self.sent_bytes += size
                self._origin = dts if self._origin is None else self._origin
                self.sent_time_ms = max(self.sent_time_ms, int((dts - self._origin) * 1000))
        finally:
            _close_quietly(self.output)


class _FfmpegProcess:
    """An ffmpeg subprocess with its ``-progress`` output and its error lines collected by threads."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.total_size = 0
        self.out_time_ms = 0
        self._errors: list[str] = []
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,  # a Ctrl-C of the worker is not ffmpeg's
        )
        self._threads = [
            threading.Thread(target=self._read_progress, daemon=True),
            threading.Thread(target=self._read_errors, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def poll(self) -> int | None:
        return self._process.poll()

    def errors(self) -> list[str]:
        for thread in self._threads:
            thread.join(2.0)
        return list(self._errors)

    def stop(self, grace: float = 5.0) -> None:
        """Let ffmpeg finish its output (SIGINT), kill it if it does not within ``grace`` seconds."""
        if self._process.poll() is None:
            try:
                os.kill(self._process.pid, signal.SIGINT)
                self._process.wait(grace)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            except ProcessLookupError:
                pass
        for thread in self._threads:
            thread.join(2.0)

    def _read_progress(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            key, _, value = line.strip().partition("=")
            try:
                if key == "total_size":
                    self.total_size = max(self.total_size, int(value))
                elif key == "out_time_us":
                    self.out_time_ms = max(self.out_time_ms, int(value) // 1000)
            except ValueError:
                pass  # "N/A" before the first packet

    def _read_errors(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            line = line.strip()
            if line:
                self._errors = [*self._errors[-49:], line]


def _reason(error: BaseException) -> str:
    if isinstance(error, av.ExitError):
        return "timed out"
    strerror = getattr(error, "strerror", None)
    return strerror or str(error) or type(error).__name__


def _close_quietly(output: OutputContainer) -> None:
    try:
        output.close()
    except (av.FFmpegError, OSError) as error:
        logger.debug("closing a push target: %s", error)
