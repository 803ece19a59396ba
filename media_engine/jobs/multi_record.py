"""Recording several live streams into one MP4 (WCS's multiple streams recorder): each member's video
and audio tracks side by side in one file, remuxed without re-encoding, on one time line.

A `MultiRecorder` keeps one `SourceReader` per member stream (usually the engine's RTMP play URL).
Each member's timestamps are moved onto the recording's clock: the newest packet of what its reader
holds at once when it opens (the engine's cached GOP) is placed at that moment, so a stream that
joins later starts later, and the tracks of all members stay in step. In every file each member
starts at its first video keyframe (an audio-only member at its first packet), and a packet whose
timestamp does not increase on its track is dropped.

An MP4's track list is fixed once its header is written, so a change of the member set (a member
added or removed, a member's stream ending) finishes the current file and starts the next one with
the new set; ``path_for(sequence)`` names them. The set comes from ``members()`` (keys, each read
from ``source_url(key)``), asked at most every MEMBER_POLL_INTERVAL seconds; readers of members
that stay carry on across files. The switch waits until every new member's source is open (or
failed) and ``members()`` has not changed for SETTLE_TIME, so members added together (or one call
after the other) land in the same file; a newcomer's packets since its last keyframe are held back
meanwhile and start its tracks, so nothing of it is lost. A recording runs, with or without
members, until ``should_stop()``. Files are fragmented MP4, as the Recorder writes them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream

from media_engine.jobs.record import FRAGMENTED_MP4_MOVFLAGS
from media_engine.jobs.source import SourceEnd, SourceReader, StopPoller

__all__ = ["MultiRecordedFile", "MultiRecorder"]

logger = logging.getLogger(__name__)

MEMBER_POLL_INTERVAL = 0.5  # seconds between calls of ``members()`` (it may query a database)
RETRY_DELAY = 2.0  # a member whose source failed or ended is opened again after this, if still wanted
PACKETS_PER_TURN = 64  # taken from one member before the next member's turn
SETTLE_TIME = 1.5  # seconds without a change of ``members()`` before the next file starts
MAX_HELD = 2048  # packets a waiting member holds back (a GOP); beyond, it waits for its next keyframe
MAX_FIRST_BATCH = 4096  # packets a new member's reader may hold at once (a cached GOP, the probe)
IDLE_WAIT = 0.01  # seconds to sleep when no member had a packet


# Fragmented as the Recorder's files (media_engine/jobs/record.py): every GOP is written as it comes,
# so the file of a worker killed mid-recording still plays up to its last fragment.
MP4_OPTIONS = {"movflags": FRAGMENTED_MP4_MOVFLAGS, "flush_packets": "1"}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class MultiRecordedFile:
    """One file of a multiple streams recording: which members (keys, in track order) it holds."""

    sequence: int
    path: Path
    members: list[str]
    started_at: datetime
    finished_at: datetime | None = None
    bytes: int = 0
    duration_ms: int = 0


FileCallback = Callable[[MultiRecordedFile], None]


class _Member:
    """A member stream: its reader, opened in the background, and its offset onto the recording clock."""

    def __init__(self, key: str, reader: SourceReader) -> None:
        self.key = key
        self.reader = reader
        self.state = "opening"  # -> "open" -> "ended"; or "failed"
        self.error: BaseException | None = None
        self.kinds: dict[int, str] = {}
        self.has_video = False
        # Recording time minus source time, fixed by the member's first packet.
        self.offset: Fraction | None = None
        # While it waits for a file (its join settling): its packets since its last keyframe.
        self.held: list[Packet] = []
        self._closed = threading.Event()
        self._outcome: bool | BaseException | None = None
        threading.Thread(target=self._wait_open, name=f"multi-record open {key}", daemon=True).start()

    def _wait_open(self) -> None:
        try:
            self._outcome = self.reader.wait_open(self._closed.is_set)
        except BaseException as error:  # noqa: BLE001 - handed to the recording thread
            self._outcome = error

    def settle(self) -> None:
        """Take the result of the background open, in the recording thread."""
        if self.state != "opening" or self._outcome is None:
            return
        if isinstance(self._outcome, BaseException):
            self.state, self.error = "failed", self._outcome
        elif self._outcome:
            self.state = "open"
            self.kinds = {stream.index: stream.type for stream in self.reader.streams}
            self.has_video = "video" in self.kinds.values()

    @property
    def templates(self) -> list[Stream]:
        return list(self.reader.streams)

    def close(self) -> None:
        self._closed.set()
        self.reader.close()


@dataclass
class _Part:
    """The file being written (opened at the first packet it takes) and its timestamp bookkeeping."""

    keys: tuple[str, ...]
    info: MultiRecordedFile | None = None
    container: OutputContainer | None = None
    outputs: dict[tuple[str, int], Stream] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)  # members whose first keyframe is in
    origin: Fraction | None = None  # recording time of the file's zero
    last_dts: dict[tuple[str, int], int] = field(default_factory=dict)
    first: Fraction | None = None
    end: Fraction | None = None


class MultiRecorder:
    """Records the streams ``members()`` names into MP4 files until ``should_stop()``.

    ``members()`` returns the keys of the wanted member streams, in track order; ``source_url(key)``
    is where a joining member is read from. Files are
    named by ``path_for(sequence)`` (missing folders are created), sequences counting up from
    ``first_sequence``; ``on_file_started``/``on_file_finished`` are called around each, in the
    thread of ``run``. ``clock`` (monotonic seconds) places packets; ``wall_clock`` dates files.
    """

    def __init__(
        self,
        members: Callable[[], Iterable[str]],
        source_url: Callable[[str], str],
        path_for: Callable[[int], Path],
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_file_started: FileCallback | None = None,
        on_file_finished: FileCallback | None = None,
        first_sequence: int = 0,
        open_timeout: float = 10.0,
        stall_timeout: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.members = members
        self.source_url = source_url
        self.path_for = path_for
        self.on_file_started = on_file_started
        self.on_file_finished = on_file_finished
        self.open_timeout = open_timeout
        self.stall_timeout = stall_timeout
        self.clock = clock
        self.wall_clock = wall_clock
        self.files: list[MultiRecordedFile] = []  # finished files, in order
        self._stop_requested = StopPoller(should_stop)
        self._next_sequence = first_sequence
        self._members: dict[str, _Member] = {}
        self._retry_at: dict[str, float] = {}
        self._part: _Part | None = None
        self._start = 0.0
        self._last_poll = float("-inf")
        self._wanted: list[str] = []
        self._wanted_changed_at = float("-inf")

    # -- driving ----------------------------------------------------------------------------------

    def run(self) -> list[MultiRecordedFile]:
        """Record until stopped; the finished files. Always closes the current file properly."""
        self._start = self.clock()
        try:
            while not self._stop_requested():
                self._follow_members()
                self._settle_members()
                if not self._pump():
                    time.sleep(IDLE_WAIT)
        finally:
            for member in self._members.values():
                member.close()
            self._members.clear()
            self._finish_part()
        return self.files

    def _now(self) -> Fraction:
        """Recording time: seconds since ``run`` started, to the microsecond."""
        return Fraction(round((self.clock() - self._start) * 1_000_000), 1_000_000)

    # -- members ----------------------------------------------------------------------------------

    def _follow_members(self) -> None:
        now = self.clock()
        if now - self._last_poll < MEMBER_POLL_INTERVAL:
            return
        self._last_poll = now
        wanted = list(dict.fromkeys(self.members()))
        if wanted != self._wanted:
            self._wanted, self._wanted_changed_at = wanted, now
        for key, member in list(self._members.items()):
            if key not in wanted:
                logger.info("multi-record: member %s left", key)
                member.close()
                del self._members[key]
        for key in wanted:
            if key in self._members or self._retry_at.get(key, float("-inf")) > now:
                continue
            try:
                url = self.source_url(key)
            except Exception as error:  # noqa: BLE001 - e.g. its stream ended meanwhile: try again later
                logger.warning("multi-record: member %s has no source: %s", key, error)
                self._retry_at[key] = now + RETRY_DELAY
                continue
            logger.info("multi-record: member %s joins", key)  # not its URL: it may hold a credential
            reader = SourceReader(url, open_timeout=self.open_timeout, stall_timeout=self.stall_timeout)
            self._members[key] = _Member(key, reader.start())

    def _settle_members(self) -> None:
        for key, member in list(self._members.items()):
            member.settle()
            if member.state == "failed":
                logger.warning("multi-record: member %s cannot be read: %s", key, member.error)
                self._drop(member)
        if any(member.state == "opening" for member in self._members.values()):
            return  # members added together start the next file together
        if self.clock() - self._wanted_changed_at < SETTLE_TIME:
            return  # members added one call after the other, too
        ready = tuple(key for key, member in self._members.items() if member.state == "open")
        current = self._part.keys if self._part is not None else ()
        if set(ready) != set(current):
            self._switch(ready)

    def _switch(self, keys: tuple[str, ...]) -> None:
        """Finish the current file; the next one holds ``keys``. Newcomers start with the GOP they
        held back while waiting (so nothing of them is lost), members that stay at their next keyframe."""
        self._finish_part()
        self._part = _Part(keys) if keys else None
        waiting = [self._members[key] for key in keys if self._members[key].held]
        if self._part is None or not waiting:
            return
        self._part.origin = min(member.held[0].dts * member.held[0].time_base + member.offset for member in waiting)
        for member in waiting:
            held, member.held = member.held, []
            for packet in held:
                self._take(member, packet)

    def _drop(self, member: _Member) -> None:
        member.close()
        del self._members[member.key]
        self._retry_at[member.key] = self.clock() + RETRY_DELAY

    # -- packets ----------------------------------------------------------------------------------

    def _pump(self) -> bool:
        """Move the packets waiting in the members' readers into the file; False if there were none."""
        moved = False
        for member in list(self._members.values()):
            if member.state != "open":
                continue
            batch = self._first_batch(member) if member.offset is None else []
            for _ in range(PACKETS_PER_TURN + len(batch)):
                item = batch.pop(0) if batch else member.reader.get(timeout=0)
                if item is None:
                    break
                moved = True
                if isinstance(item, SourceEnd):
                    if item.error is not None:
                        logger.warning("multi-record: member %s lost: %s", member.key, item.error)
                    else:
                        logger.info("multi-record: member %s ended", member.key)
                    member.state = "ended"
                    self._drop(member)
                    break
                self._take(member, item)
        return moved

    def _first_batch(self, member: _Member) -> list[Packet | SourceEnd]:
        """What a new member's reader holds at once (the engine's cached GOP, the probed packets),
        and the member's offset onto the recording clock: its newest packet is the live edge, now."""
        batch: list[Packet | SourceEnd] = []
        while len(batch) < MAX_FIRST_BATCH:
            item = member.reader.get(timeout=0)
            if item is None:
                break
            batch.append(item)
            if isinstance(item, SourceEnd):
                break
        times = [item.dts * item.time_base for item in batch if isinstance(item, Packet)]
        if times:
            member.offset = self._now() - max(times)
        return batch

    def _hold(self, member: _Member, packet: Packet, kind: str) -> None:
        """Keep a waiting member's packets since its last video keyframe (audio only: its latest)."""
        if kind == "video" and packet.is_keyframe:
            member.held = [packet]
        elif member.held or not member.has_video:
            member.held.append(packet)
            if len(member.held) > MAX_HELD:
                member.held = member.held[-MAX_HELD:] if not member.has_video else []

    def _take(self, member: _Member, packet: Packet) -> None:
        kind = member.kinds.get(packet.stream_index)
        if kind is None:
            return
        source_time = packet.dts * packet.time_base
        if member.offset is None:  # pragma: no cover - set by _first_batch
            member.offset = self._now() - source_time
        part = self._part
        if part is None or member.key not in part.keys:
            self._hold(member, packet, kind)  # a member whose file has not started yet
            return
        at = source_time + member.offset
        if member.key not in part.started:
            if not (kind == "video" and packet.is_keyframe or not member.has_video):
                return  # each member starts at a video keyframe
            if part.origin is not None and at < part.origin:
                return  # before the file's start: wait for its next keyframe
            if part.container is None and not self._open_part(part):
                return
            if part.origin is None:
                part.origin = at
            part.started.add(member.key)
        assert part.origin is not None and part.container is not None
        if at < part.origin:
            return  # interleaved just behind the keyframe that opened the file
        self._mux(part, member, packet, at)

    def _mux(self, part: _Part, member: _Member, packet: Packet, at: Fraction) -> None:
        track = (member.key, packet.stream_index)
        time_base = packet.time_base
        dts = round((at - part.origin) / time_base)
        if dts <= part.last_dts.get(track, -1):
            logger.debug("multi-record: member %s: dropping a packet with non-increasing dts", member.key)
            return
        part.last_dts[track] = dts
        pts = dts + ((packet.pts - packet.dts) if packet.pts is not None else 0)
        packet.dts, packet.pts = dts, pts
        start = pts * time_base
        end = start + (packet.duration or 0) * time_base
        part.first = start if part.first is None else min(part.first, start)
        part.end = end if part.end is None else max(part.end, end)
        packet.stream = part.outputs[track]
        part.container.mux(packet)

    # -- files ------------------------------------------------------------------------------------

    def _open_part(self, part: _Part) -> bool:
        members = [self._members.get(key) for key in part.keys]
        if any(member is None or member.state != "open" for member in members):
            return False  # a member just went away: the next file takes the new set
        sequence = self._next_sequence
        path = Path(self.path_for(sequence))
        path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(path), "w", format="mp4", container_options=MP4_OPTIONS)
        try:
            for member in members:
                for template in member.templates:
                    output = container.add_stream_from_template(template)
                    # The member's key names its tracks (shown by ffprobe as handler_name).
                    output.metadata["handler_name"] = member.key
                    part.outputs[(member.key, template.index)] = output
        except Exception:
            container.close()
            raise
        self._next_sequence += 1
        part.container = container
        part.info = MultiRecordedFile(sequence, path, list(part.keys), self.wall_clock())
        logger.info("multi-record: file %s started with %s (%s)", sequence, ", ".join(part.keys), path)
        if self.on_file_started is not None:
            self.on_file_started(replace(part.info, members=list(part.info.members)))
        return True

    def _finish_part(self) -> None:
        part, self._part = self._part, None
        if part is None or part.container is None or part.info is None:
            return  # nothing was written: no file
        try:
            part.container.close()
        except Exception:
            logger.exception("multi-record: closing %s failed", part.info.path)
        info = part.info
        info.finished_at = self.wall_clock()
        try:
            info.bytes = info.path.stat().st_size
        except OSError:
            info.bytes = 0
        if part.first is not None and part.end is not None:
            info.duration_ms = max(0, round((part.end - part.first) * 1000))
        self.files.append(info)
        logger.info("multi-record: file %s finished (%s bytes, %s ms)", info.sequence, info.bytes, info.duration_ms)
        if self.on_file_finished is not None:
            self.on_file_finished(replace(info, members=list(info.members)))
