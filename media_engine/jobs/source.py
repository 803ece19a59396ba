"""Reading a live source (usually the engine's own RTMP play URL) with PyAV, from a background thread.

Record and push jobs run blocking in a worker thread and must notice a stop request within about
half a second, even while the source stalls. A PyAV read cannot be resumed once interrupted (an
RTMP input aborted by a timeout answers every later read with EIO), so the job thread never reads
itself: a `SourceReader` thread opens the source and demuxes it into a bounded queue, and the job
thread polls that queue with a short timeout, calling its ``should_stop`` between polls.

The reader thread ends on its own: at the end of the source, when the job closes the reader (seen
after the next packet, i.e. at once for a live stream), or at the latest when a stalled read runs
into ``stall_timeout``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import av
from av.container import InputContainer
from av.packet import Packet
from av.stream import Stream

# Every job logs and reports URLs through this: it hides job tokens and other credentials.
from media_engine.internal_auth import redact_url
from media_engine.outbound import OutboundRefused

logger = logging.getLogger(__name__)

MEDIA_KINDS = ("video", "audio")

# The engine sends codec configurations first and a GOP from its cache at once: half a second of
# probing finds every track (the default, up to 5 s, holds the first packet back for about 1 s).
INPUT_OPTIONS = {"analyzeduration": "500000"}

# How often a job thread waiting on its source looks at its stop flag.
POLL_INTERVAL = 0.25


class StopPoller:
    """A job's "should I stop?": asks ``should_stop`` at most every POLL_INTERVAL seconds (it may
    query a database), and once it said yes, stays stopped."""

    def __init__(self, should_stop: Callable[[], bool], clock: Callable[[], float] = time.monotonic) -> None:
        self.should_stop = should_stop
        self.clock = clock
        self.stopping = False
        self._last_check = float("-inf")

    def __call__(self) -> bool:
        now = self.clock()
        if not self.stopping and now - self._last_check >= POLL_INTERVAL:
            self._last_check = now
            self.stopping = bool(self.should_stop())
        return self.stopping


class SourceUnavailable(Exception):
    """The source cannot be opened (not live, refused, timed out) or has no track to read."""


class SourceLost(Exception):
    """Reading the source failed after it was opened (connection dropped, stalled too long)."""


@dataclass(frozen=True)
class SourceEnd:
    """The last item of a reader's queue: the source ended (``error`` None) or failed."""

    error: BaseException | None = None


def check_kinds(kinds: Iterable[str] | None) -> tuple[str, ...] | None:
    """Validate a track filter ("video" and/or "audio"); None keeps every audio and video track."""
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = [kinds]
    result = tuple(dict.fromkeys(kind.lower() for kind in kinds))
    unknown = [kind for kind in result if kind not in MEDIA_KINDS]
    if unknown or not result:
        raise ValueError(f"track filter must name 'video' and/or 'audio', not {list(kinds)!r}")
    return result


def open_failure(url: str, strerror: str) -> str:
    """FFmpeg's reason for not opening ``url``, in words (its RTMP client answers a refused play
    with EPERM)."""
    if strerror == "Operation not permitted" and url.startswith("rtmp"):
        return "the server refused to play it (is the stream live?)"
    return strerror or "failed"


class SourceReader:
    """Opens ``url`` with PyAV in a daemon thread and queues the packets of its audio/video tracks.

    ``streams`` (the selected input streams) is set once ``wait_open`` returned True. The job thread
    uses them only as templates for output streams; packets come out of ``get``, then a `SourceEnd`.
    """

    def __init__(
        self,
        url: str,
        *,
        open_timeout: float = 10.0,
        stall_timeout: float = 15.0,
        kinds: Iterable[str] | None = None,
        queue_size: int = 1024,
        options: dict[str, str] | None = None,
        io_open: Callable | None = None,
    ) -> None:
        self.url = url
        # PyAV's io_open: who opens the URLs FFmpeg reads (HTTP pulls: under the outbound policy).
        self.io_open = io_open
        self.options = {**INPUT_OPTIONS, **(options or {})}
        self.open_timeout = open_timeout
        self.stall_timeout = stall_timeout
        self.kinds = check_kinds(kinds)
        self.streams: list[Stream] = []
        self._queue: queue.Queue[Packet | SourceEnd] = queue.Queue(queue_size)
        self._opened = threading.Event()
        self._abort = threading.Event()
        self._open_error: BaseException | None = None
        # The input container is closed by whichever of the two threads is done last: the job
        # thread uses its streams as templates, so they must outlive the reader thread.
        self._container: InputContainer | None = None
        self._release_lock = threading.Lock()
        self._users = 2
        self._thread = threading.Thread(target=self._run, name=f"source-reader {redact_url(url)}", daemon=True)

    def start(self) -> SourceReader:
        self._thread.start()
        return self

    def wait_open(self, stopping: Callable[[], bool]) -> bool:
        """Block until the source is open (True) or ``stopping()`` (False); raise `SourceUnavailable`."""
        while not self._opened.wait(POLL_INTERVAL):
            if stopping():
                return False
        if self._open_error is not None:
            raise self._open_error
        return True

    def get(self, timeout: float = POLL_INTERVAL) -> Packet | SourceEnd | None:
        """The next packet, a `SourceEnd`, or None if nothing came within ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self, wait: float = 0.2) -> None:
        """Stop reading; waits up to ``wait`` seconds for the thread (a stalled read may take longer).

        ``streams`` must not be used afterwards.
        """
        if self._abort.is_set():
            return
        self._abort.set()
        # Free the queue so a reader blocked on put() sees the abort.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(wait)
        self._release()

    def _release(self) -> None:
        with self._release_lock:
            self._users -= 1
            container = self._container if self._users == 0 else None
            if container is not None:
                self._container = None
        if container is not None:
            container.close()

    # -- the reader thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            container = self._open()
        except BaseException as error:  # noqa: BLE001 - handed to the job thread
            self._open_error = error
            self._opened.set()
            self._release()
            return
        self._container = container
        self._opened.set()
        try:
            self._demux(container)
        finally:
            self._release()

    def _open(self) -> InputContainer:
        started = time.monotonic()
        try:
            container = av.open(
                self.url,
                "r",
                options=self.options,
                timeout=(self.open_timeout, self.stall_timeout),
                io_open=self.io_open,
            )
        except (OutboundRefused, OSError) as error:  # from io_open: refused, unresolved, refused connection
            raise SourceUnavailable(f"cannot open {redact_url(self.url)}: {error}") from None
        except av.FFmpegError as error:
            elapsed = time.monotonic() - started
            reason = "timed out" if isinstance(error, av.ExitError) else open_failure(self.url, error.strerror or "")
            # Not chained: FFmpeg's error names the URL, credentials and all.
            raise SourceUnavailable(f"cannot open {redact_url(self.url)}: {reason} (after {elapsed:.1f} s)") from None
        streams = [
            stream
            for stream in container.streams
            if stream.type in (self.kinds or MEDIA_KINDS) and stream.codec_context is not None
        ]
        if not streams:
            found = ", ".join(s.type for s in container.streams) or "nothing"
            wanted = " or ".join(self.kinds or MEDIA_KINDS)
            container.close()
            raise SourceUnavailable(f"{redact_url(self.url)} has no {wanted} track (found {found})")
        self.streams = streams
        return container

    def _demux(self, container: InputContainer) -> None:
        end = SourceEnd()
        try:
            for packet in container.demux(self.streams):
                if self._abort.is_set():
                    return
                if packet.size == 0 or packet.dts is None:
                    continue  # PyAV's flush packets at the end, and packets without timing
                self._put(packet)
        except av.ExitError:
            end = SourceEnd(SourceLost(f"{redact_url(self.url)}: no data for {self.stall_timeout:g} s"))
        except OutboundRefused as error:  # an HLS segment or redirect somewhere refused
            end = SourceEnd(SourceLost(f"{redact_url(self.url)}: {error}"))
        except (av.FFmpegError, OSError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__  # str(error) names the URL
            end = SourceEnd(SourceLost(f"{redact_url(self.url)}: {reason}"))
        self._put(end)

    def _put(self, item: Packet | SourceEnd) -> None:
        while not self._abort.is_set():
            try:
                self._queue.put(item, timeout=POLL_INTERVAL)
                return
            except queue.Full:
                continue
