"""Recording a live stream to files: remux (no re-encoding) with PyAV from a source URL.

A `Recorder` plays the source (the engine's RTMP URL, like any client) and writes its audio and
video packets to a sequence of files named by the caller's ``path_for``; the container follows the
suffix (``.mp4`` or ``.ts``). A new file starts at a video keyframe once ``interval_ms`` of media
time went into the current one, or once the wall clock crossed a boundary of ``schedule`` (OME's
"<second> <minute> <hour>" fields, see `parse_schedule`). With the "continuity" segmentation rule
timestamps run on across files (all relative to the start of the recording); with "discontinuity"
each file starts at zero.

MP4 files are written fragmented (``movflags=+frag_keyframe+empty_moov+delay_moov+default_base_moof``):
a moov box up front and then every GOP as a self-contained fragment, so the file of a worker that
was killed mid-recording still plays up to its last complete fragment (a classic MP4 has its moov
written at the end and would be unreadable then; record jobs are delivered again after a worker
dies and keep what the dead one wrote). ``delay_moov`` writes the moov with the first fragment,
so that its edit list can carry the start time of a "continuity" file and the A/V offset at the
start of every file (with a plain ``empty_moov`` each track would start at zero). The price: a
worker killed within the first GOP of a file leaves an unreadable stub. ``fragmented_mp4=False``
writes classic files for players that need them.

`Recorder.run` blocks: it returns when ``should_stop()`` says so (asked every ~0.25 s, even while
the source stalls) or when the source ends, and it always closes the current file properly first.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream

from media_engine.jobs.source import (
    POLL_INTERVAL,
    SourceEnd,
    SourceReader,
    SourceUnavailable,
    StopPoller,
    check_kinds,
    redact_url,
)

__all__ = [
    "RecordedFile",
    "Recorder",
    "Schedule",
    "SegmentationRule",
    "SourceUnavailable",
    "parse_schedule",
]

logger = logging.getLogger(__name__)

SegmentationRule = Literal["discontinuity", "continuity"]
SEGMENTATION_RULES = ("discontinuity", "continuity")

CONTAINERS = {".mp4": "mp4", ".ts": "mpegts"}

PROGRESS_INTERVAL = 1.0  # seconds between on_progress calls

# A fragment per video keyframe (audio-only files: per second, see _start_file). delay_moov writes
# the moov with the first fragment rather than at the header, so that it can carry the edit list
# of a file whose timestamps do not start at zero (continuity) and the A/V offset at its start.
FRAGMENTED_MP4_MOVFLAGS = "+frag_keyframe+empty_moov+delay_moov+default_base_moof"


def utc_now() -> datetime:
    return datetime.now(UTC)


# -- schedule -------------------------------------------------------------------------------------

_FIELD_NAMES = ("second", "minute", "hour")
_FIELD_LIMITS = (60, 60, 24)
_STEP = re.compile(r"^(\*|\d+|\d+-\d+)(?:/(\d+))?$")


@dataclass(frozen=True)
class Schedule:
    """The split times of a record: the seconds, minutes and hours that match, each sorted."""

    text: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]

    def next_after(self, moment: datetime) -> datetime:
        """The first matching instant strictly after ``moment`` (in ``moment``'s time zone)."""
        base = moment.replace(microsecond=0)
        for day_offset in (0, 1):
            day: date = base.date() + timedelta(days=day_offset)
            for hour in self.hours:
                if day_offset == 0 and hour < base.hour:
                    continue
                for minute in self.minutes:
                    if day_offset == 0 and hour == base.hour and minute < base.minute:
                        continue
                    for second in self.seconds:
                        candidate = datetime.combine(day, wall_time(hour, minute, second), tzinfo=moment.tzinfo)
                        if candidate > moment:
                            return candidate
        raise AssertionError("every schedule matches once a day")  # pragma: no cover


def _parse_field(text: str, name: str, limit: int) -> tuple[int, ...]:
    values: set[int] = set()
    for part in text.split(","):
        match = _STEP.match(part)
        if match is None:
            raise ValueError(f"schedule {name} field {text!r} is not a number, '*', 'a-b' or a '/step' of them")
        span, step_text = match.groups()
        if span == "*":
            first, last = 0, limit - 1
        elif "-" in span:
            first, last = (int(value) for value in span.split("-"))
        else:
            first = last = int(span)
            if step_text is not None:  # "5/10": from 5 to the end, every 10 (as cron reads it)
                last = limit - 1
        step = int(step_text) if step_text is not None else 1
        if not (0 <= first <= last < limit):
            raise ValueError(f"schedule {name} field {text!r} must be within 0-{limit - 1}")
        if step < 1:
            raise ValueError(f"schedule {name} field {text!r} has a step below 1")
        values.update(range(first, last + 1, step))
    return tuple(sorted(values))


def parse_schedule(text: str) -> Schedule:
    """Parse OME's record schedule "<second> <minute> <hour>"; raise ValueError if it is not one.

    Each field is ``*``, a number, a range ``a-b``, any of these with a ``/step``, or a comma
    list of them: "0 */1 *" splits every minute at second 0, "0 0 */1" every hour, "0 0,30 *"
    every half hour.
    """
    if not isinstance(text, str):
        raise ValueError("schedule must be a string like '0 */1 *'")
    fields = text.split()
    if len(fields) != 3:
        raise ValueError(f"schedule {text!r} must have three fields: '<second> <minute> <hour>', e.g. '0 */1 *'")
    seconds, minutes, hours = (
        _parse_field(field, name, limit) for field, name, limit in zip(fields, _FIELD_NAMES, _FIELD_LIMITS, strict=True)
    )
    return Schedule(" ".join(fields), seconds, minutes, hours)


# -- recorder -------------------------------------------------------------------------------------


@dataclass
class RecordedFile:
    """One file of a record. ``bytes`` and ``duration_ms`` grow while it is written."""

    sequence: int
    path: Path
    started_at: datetime
    finished_at: datetime | None = None
    bytes: int = 0
    duration_ms: int = 0


FileCallback = Callable[[RecordedFile], None]


class _OpenFile:
    """The output being written: container, streams, timestamp bookkeeping (in seconds)."""

    def __init__(self, info: RecordedFile, container: OutputContainer, streams: dict[int, Stream], shift: Fraction):
        self.info = info
        self.container = container
        self.streams = streams  # input stream index -> output stream
        self.shift = shift  # subtracted from every timestamp written to this file
        self.start: Fraction | None = None  # source time (dts) of the packet that opened the file
        self.first_pts: Fraction | None = None
        self.end: Fraction | None = None
        self.last_dts: dict[int, int] = {}


class Recorder:
    """Remuxes ``source_url`` into files until ``should_stop()`` or the end of the source.

    ``path_for(sequence, started_at)`` names each file (missing folders are created); sequences
    count up from ``first_sequence``. ``on_file_started``/``on_file_finished`` are called around
    each file, ``on_progress`` at most once a second while one is written, all in the thread of
    ``run``. ``clock`` gives the wall time (aware, UTC by default) of file starts, ends and of the
    schedule. ``track_filter`` keeps only the given kinds ("video", "audio") of track.
    """

    def __init__(
        self,
        source_url: str,
        path_for: Callable[[int, datetime], Path],
        *,
        interval_ms: int | None = None,
        schedule: str | None = None,
        segmentation_rule: SegmentationRule = "discontinuity",
        should_stop: Callable[[], bool] = lambda: False,
        on_file_started: FileCallback | None = None,
        on_file_finished: FileCallback | None = None,
        on_progress: FileCallback | None = None,
        open_timeout: float = 10.0,
        first_sequence: int = 0,
        clock: Callable[[], datetime] = utc_now,
        track_filter: Iterable[str] | None = None,
        stall_timeout: float = 15.0,
        fragmented_mp4: bool = True,
    ) -> None:
        if segmentation_rule not in SEGMENTATION_RULES:
            raise ValueError(f"segmentation rule must be one of {', '.join(SEGMENTATION_RULES)}")
        if interval_ms is not None and interval_ms < 0:
            raise ValueError("interval_ms must not be negative")
        self.source_url = source_url
        self.path_for = path_for
        self.interval = Fraction(interval_ms, 1000) if interval_ms else None  # 0: no interval
        self.schedule = parse_schedule(schedule) if schedule else None
        self.continuity = segmentation_rule == "continuity"
        self.should_stop = should_stop
        self.on_file_started = on_file_started
        self.on_file_finished = on_file_finished
        self.on_progress = on_progress
        self.open_timeout = open_timeout
        self.clock = clock
        self.track_filter = check_kinds(track_filter)
        self.stall_timeout = stall_timeout
        self.fragmented_mp4 = fragmented_mp4
        self.files: list[RecordedFile] = []  # finished files, in order
        self._next_sequence = first_sequence
        self._file: _OpenFile | None = None
        self._origin: Fraction | None = None  # source time of the first packet recorded
        self._split_at: datetime | None = None  # next schedule boundary
        self._has_video = False
        self._inputs: dict[int, Stream] = {}
        self._kinds: dict[int, str] = {}
        self._stop_requested = StopPoller(should_stop)
        self._last_progress = 0.0

    # -- driving ----------------------------------------------------------------------------------

    def run(self) -> list[RecordedFile]:
        """Record until stopped or the source ends; the finished files. Raises `SourceUnavailable`."""
        reader = SourceReader(
            self.source_url, open_timeout=self.open_timeout, stall_timeout=self.stall_timeout, kinds=self.track_filter
        ).start()
        try:
            if not reader.wait_open(self._stop_requested):
                return self.files
            self._inputs = {stream.index: stream for stream in reader.streams}
            self._kinds = {stream.index: stream.type for stream in reader.streams}
            self._has_video = "video" in self._kinds.values()
            while not self._stop_requested():
                item = reader.get(POLL_INTERVAL)
                if item is None:
                    continue
                if isinstance(item, SourceEnd):
                    if item.error is not None:
                        logger.warning("record of %s: source lost: %s", redact_url(self.source_url), item.error)
                    break
                self._write(item)
                self._maybe_progress()
        finally:
            reader.close()
            if self._file is not None:
                self._finish_file()
        return self.files

    # -- packets ----------------------------------------------------------------------------------

    def _write(self, packet: Packet) -> None:
        kind = self._kinds.get(packet.stream_index)
        if kind is None:
            return
        dts = packet.dts * packet.time_base
        cut_point = packet.is_keyframe and kind == "video" or not self._has_video
        if self._file is None:
            if not cut_point:
                return  # start on a video keyframe
            self._start_file(dts)
        elif cut_point and self._split_due(dts):
            self._finish_file()
            self._start_file(dts)
        current = self._file
        assert current is not None and current.start is not None
        if dts < current.start:
            return  # interleaved just behind the keyframe that opened this file
        out_stream = current.streams[packet.stream_index]
        shift = round(current.shift / packet.time_base)
        new_dts = packet.dts - shift
        if new_dts <= current.last_dts.get(packet.stream_index, -(2**62)):
            logger.debug("record of %s: dropping a packet with non-increasing dts", redact_url(self.source_url))
            return
        current.last_dts[packet.stream_index] = new_dts
        pts = packet.pts if packet.pts is not None else packet.dts
        packet.dts = new_dts
        packet.pts = pts - shift
        pts_seconds = (pts - shift) * packet.time_base
        end = pts_seconds + (packet.duration or 0) * packet.time_base
        current.first_pts = pts_seconds if current.first_pts is None else min(current.first_pts, pts_seconds)
        current.end = end if current.end is None else max(current.end, end)
        packet.stream = out_stream
        current.container.mux(packet)

    def _split_due(self, dts: Fraction) -> bool:
        current = self._file
        assert current is not None and current.start is not None
        if self.interval is not None and dts - current.start >= self.interval:
            return True
        return self._split_at is not None and self.clock() >= self._split_at

    # -- files ------------------------------------------------------------------------------------

    def _start_file(self, dts: Fraction) -> None:
        if self._origin is None:
            self._origin = dts
        started_at = self.clock()
        sequence = self._next_sequence
        self._next_sequence += 1
        path = Path(self.path_for(sequence, started_at))
        path.parent.mkdir(parents=True, exist_ok=True)
        container_format = CONTAINERS.get(path.suffix.lower())
        if container_format is None:
            raise ValueError(f"cannot record to {path.name}: the file name must end in .mp4 or .ts")
        options = {}
        if container_format == "mp4" and self.fragmented_mp4:
            options["movflags"] = FRAGMENTED_MP4_MOVFLAGS
            if not self._has_video:
                options["frag_duration"] = "1000000"
        # Hand every fragment (MP4) or packet (TS) to the file at once: a killed worker loses less,
        # and the size in on_progress is what is on disk.
        container = av.open(
            str(path), "w", format=container_format, container_options={**options, "flush_packets": "1"}
        )
        try:
            streams = {index: container.add_stream_from_template(stream) for index, stream in self._inputs.items()}
        except Exception:
            container.close()
            raise
        shift = self._origin if self.continuity else dts
        self._file = _OpenFile(RecordedFile(sequence, path, started_at), container, streams, shift)
        self._file.start = dts
        if self.schedule is not None:
            self._split_at = self.schedule.next_after(started_at)
        self._last_progress = time.monotonic()
        logger.info("record of %s: file %s started (%s)", redact_url(self.source_url), sequence, path)
        if self.on_file_started is not None:
            self.on_file_started(replace(self._file.info))

    def _finish_file(self) -> None:
        current = self._file
        assert current is not None
        self._file = None
        try:
            current.container.close()
        except Exception:
            logger.exception("record of %s: closing %s failed", redact_url(self.source_url), current.info.path)
        info = current.info
        info.finished_at = self.clock()
        self._measure(current)
        self.files.append(info)
        logger.info(
            "record of %s: file %s finished (%s bytes, %s ms)",
            redact_url(self.source_url),
            info.sequence,
            info.bytes,
            info.duration_ms,
        )
        if self.on_file_finished is not None:
            self.on_file_finished(replace(info))

    def _measure(self, current: _OpenFile) -> None:
        info = current.info
        try:
            info.bytes = info.path.stat().st_size
        except OSError:
            info.bytes = 0
        if current.first_pts is not None and current.end is not None:
            info.duration_ms = max(0, round((current.end - current.first_pts) * 1000))

    def _maybe_progress(self) -> None:
        if self._file is None or self.on_progress is None:
            return
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        self._measure(self._file)
        self.on_progress(replace(self._file.info))
