"""Low-Latency HLS (RFC 8216bis) packaging of live streams in CMAF fragmented MP4, kept in memory or
as files (`store`).

`LlHlsSegmenter` turns one stream's packets (no re-encoding) into muxed audio+video fMP4: one init
segment, then partial segments ("parts", one ``moof``+``mdat`` each) of at most the application's
``llhls_part_duration``, grouped into segments of about ``llhls_segment_duration`` that start on video
keyframes (a segment is the concatenation of its parts). It renders the media playlist (parts of the
last few segments, a preload hint for the part being built, blocking reload support) and the master
playlist, and answers blocking requests (`wait_for`, `wait_for_file`). `LlHlsPackager` runs one
segmenter per live stream of a `StreamRegistry`, like the TS `HlsPackager`, and keeps an ended
stream's files (playlist with ``#EXT-X-ENDLIST``) for a while.

Timelines: video in 90 kHz units (the packets' milliseconds times 90, exact); audio in samples of
its sample rate, 1024 per AAC frame, re-anchored on the packets' timestamps only across a gap. The
master track (video, or audio in an audio-only stream) decides where parts and segments are cut.

File names follow OvenMediaEngine's (track 0 names the muxed rendition, ``<key>`` is a per-publication
session id so that caches never mix two publications): ``llhls.m3u8`` (master),
``chunklist_0_<video|audio>_llhls.m3u8``, ``init_0_<type>_<key>_llhls.m4s``,
``seg_0_<msn>_<type>_<key>_llhls.m4s`` and ``part_0_<msn>_<part>_<type>_<key>_llhls.m4s``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

from media_engine.control import ApplicationConfig
from media_engine.hls.fmp4 import (
    AAC_FRAME_SAMPLES,
    VIDEO_TIMESCALE,
    AudioTrack,
    Sample,
    Track,
    TrackFragment,
    VideoTrack,
    emsg_box,
    init_segment,
    media_fragment,
)
from media_engine.hls.packager import StreamPackager
from media_engine.hls.store import Files, MemoryFiles
from media_engine.packets import MediaPacket, TrackKind
from media_engine.registry import LiveStream, Subscription

logger = logging.getLogger(__name__)

MASTER_PLAYLIST_NAME = "llhls.m3u8"
PLAYLIST_VERSION = 9
# Complete segments kept beyond the playlist window, for players a little behind.
EXTRA_RETAINED_SEGMENTS = 2
# EXT-X-PART tags are listed for the segments within this many target durations of the live edge
# (RFC 8216bis 4.4.4.9), and always for the last complete segment.
PART_LISTING_TARGET_DURATIONS = 3
# A keyframe in the middle of a segment starts a new (independent) part if the current part is
# already this long relative to the part target: no runt parts (RFC 8216bis asks for >= 85%).
INDEPENDENT_PART_MIN_RATIO = 0.85
# Millisecond timestamps make a frame look up to 1 ms longer (33, 34, 33 ms at 30 fps): a part is cut before a
# frame that would end it beyond its target by more than this, so 0.2 s parts hold 6 frames at 30 fps, not 5.
CUT_TOLERANCE_S = 0.001
# Without keyframes, a segment is cut anyway after this many target durations (bounds memory).
MAX_SEGMENT_FACTOR = 4
# A blocking request waits at most this many target durations (RFC 8216bis 6.2.5.2), then 503.
BLOCKING_TIMEOUT_TARGET_DURATIONS = 3
# The publisher's clock going back by more than this restarts our timeline where it was.
CLOCK_JUMP_BACK_MS = 1000
DEFAULT_VIDEO_FRAME_MS = 40


_PART_NAME = re.compile(r"part_0_(\d+)_(\d+)_(?:video|audio)_([0-9a-f]+)_llhls\.m4s")


class BadBlockingRequest(ValueError):
    """``_HLS_msn``/``_HLS_part`` values the server must refuse with 400 Bad Request."""


def parse_blocking_request(query: Mapping[str, str]) -> tuple[int, int | None] | None:
    """The (msn, part) a playlist request blocks on, or None for a plain request.

    RFC 8216bis 6.2.5.2: ``_HLS_part`` without ``_HLS_msn`` is a bad request, and both are
    decimal integers.
    """
    msn_text = query.get("_HLS_msn")
    part_text = query.get("_HLS_part")
    if msn_text is None:
        if part_text is not None:
            raise BadBlockingRequest("_HLS_part without _HLS_msn")
        return None
    msn = _decimal_integer("_HLS_msn", msn_text)
    part = _decimal_integer("_HLS_part", part_text) if part_text is not None else None
    return msn, part


def _decimal_integer(name: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise BadBlockingRequest(f"{name} is not a decimal integer: {text!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class Part:
    """One partial segment: a CMAF chunk (``[emsg]`` ``moof`` ``mdat``)."""

    msn: int
    index: int
    name: str
    duration: float  # seconds
    independent: bool  # starts with a video keyframe (always, for audio-only streams)
    size: int  # bytes
    files: Files = field(repr=False, compare=False)

    @property
    def data(self) -> bytes:
        """The part's bytes (b"" once no playlist lists it any more)."""
        return self.files.get(self.name) or b""


@dataclass(eq=False)
class LlSegment:
    """One media segment: open while its parts are being produced, then complete with its data."""

    msn: int
    name: str
    init_name: str
    program_date_time: float  # wall-clock time (s since the epoch) of its first sample
    discontinuity: bool  # starts a new init segment (codec configuration change)
    parts: list[Part] = field(default_factory=list)  # emptied once no playlist lists them any more
    duration: float = 0.0  # seconds: the sum of its parts'
    size: int = 0  # bytes
    complete: bool = False

    def add_part(self, part: Part) -> None:
        self.parts.append(part)
        self.duration += part.duration
        self.size += part.size


class _VideoRun:
    """The video samples of the part being built (90 kHz decode times)."""

    def __init__(self, track: VideoTrack) -> None:
        self.track = track
        self.pending: list[tuple[int, int, bytes, bool]] = []  # decode time, composition offset, data, keyframe

    def add(self, decode_time: int, composition_offset: int, data: bytes, keyframe: bool) -> None:
        self.pending.append((decode_time, composition_offset, data, keyframe))

    def take(self, end_time: int) -> TrackFragment | None:
        """The pending samples, the last one lasting until ``end_time``."""
        pending, self.pending = self.pending, []
        if not pending:
            return None
        samples = []
        for index, (decode_time, offset, data, keyframe) in enumerate(pending):
            following = pending[index + 1][0] if index + 1 < len(pending) else end_time
            samples.append(Sample(data, max(0, following - decode_time), keyframe, offset))
        return TrackFragment(self.track.track_id, pending[0][0], samples)


class _AudioRun:
    """The AAC samples of the part being built, timed in samples: 1024 per frame, re-anchored on gaps."""

    def __init__(self, track: AudioTrack) -> None:
        self.track = track
        self.pending: list[tuple[int, bytes]] = []
        self.next_time: int | None = None

    def decode_time(self, timeline_ms: int) -> int:
        """The decode time of the next frame, whose timestamp is ``timeline_ms``."""
        stamped = max(0, round(timeline_ms * self.track.sample_rate / 1000))
        expected = self.next_time
        # Millisecond timestamps jitter around the exact sample count: follow them only across a gap.
        decode_time = stamped if expected is None or stamped - expected > AAC_FRAME_SAMPLES else expected
        self.next_time = decode_time + AAC_FRAME_SAMPLES
        return decode_time

    def add(self, decode_time: int, data: bytes) -> None:
        self.pending.append((decode_time, data))

    def take(self) -> TrackFragment | None:
        pending, self.pending = self.pending, []
        if not pending:
            return None
        samples = []
        for index, (decode_time, data) in enumerate(pending):
            following = pending[index + 1][0] if index + 1 < len(pending) else decode_time + AAC_FRAME_SAMPLES
            samples.append(Sample(data, following - decode_time))
        return TrackFragment(self.track.track_id, pending[0][0], samples)


class LlHlsSegmenter:
    """Packages one stream. Feed it packets in decoding order (`feed`, or `run` on a subscription)."""

    def __init__(
        self,
        config: ApplicationConfig,
        *,
        stream: LiveStream | None = None,
        session: str | None = None,
        clock: Callable[[], float] = time.time,
        files: Files | None = None,
    ) -> None:
        """``files``: where init segments, segments and parts are kept (default: in memory)."""
        self.config = config
        self.stream = stream
        self.session = session or os.urandom(4).hex()
        self.clock = clock
        self.window = max(1, config.llhls_segment_count)
        self.ended = False
        self.ended_at: float | None = None
        self.media_type = "video"  # of the rendition, as its file names say; settled at the start
        self.backlog_ms = 0  # how old the first packet fed is (a GOP replayed on demand): dates the output
        self._segment_target_s = config.llhls_segment_duration
        self._part_target_s = config.llhls_part_duration
        # codec configuration: the latest records, and the tracks of the current init segment
        self._video_config: bytes | None = None
        self._audio_config: bytes | None = None
        self._tracks: list[Track] = []
        self._tracks_stale = False
        self._video: _VideoRun | None = None
        self._audio: _AudioRun | None = None
        self._init_name = ""
        self._init_generation = 0
        self._pending_events: list[bytes] = []
        # timeline: milliseconds since the first packet, then master-track units
        self._started = False
        self._base_ms = 0
        self._offset_ms = 0
        self._last_timeline_ms = 0
        self._timescale = VIDEO_TIMESCALE
        self._wall_origin = 0.0
        self._frame_duration = DEFAULT_VIDEO_FRAME_MS * 90
        self._last_master_time: int | None = None
        self._part_start = 0
        self._part_independent = True
        self._part_closed_early = False  # the last part was closed by its last frame (`_close_full_part`)
        self._segment_start = 0
        self._fragment_sequence = 0
        # output
        self._current: LlSegment | None = None  # the segment whose parts are being produced
        self._segments: OrderedDict[int, LlSegment] = OrderedDict()  # complete ones, by msn
        self._files: Files = files if files is not None else MemoryFiles()
        self._inits: list[str] = []  # init segments written, oldest first
        self._next_msn = 0
        self._discontinuity_msns: list[int] = []
        self._longest_segment = 0.0
        self._longest_part = 0.0
        self._playlist: bytes | None = None
        self._changed = asyncio.Event()
        self._warned: set[str] = set()

    # --- reading ------------------------------------------------------------------------------

    @property
    def chunklist_name(self) -> str:
        return f"chunklist_0_{self.media_type}_llhls.m3u8"

    @property
    def init_name(self) -> str:
        """The current init segment's file name ("" before the start)."""
        return self._init_name

    @property
    def tracks(self) -> list[Track]:
        """The tracks of the current init segment: video first."""
        return list(self._tracks)

    @property
    def segments(self) -> list[LlSegment]:
        """The complete segments listed in the playlist, oldest first."""
        return list(self._segments.values())[-self.window :]

    @property
    def current_segment(self) -> LlSegment | None:
        """The segment whose parts are being produced (None before the start and after the end)."""
        return self._current

    @property
    def target_duration(self) -> int:
        """EXT-X-TARGETDURATION: never below the configured duration, never decreasing.

        RFC 8216bis 4.4.3.1: every EXTINF rounded to the nearest integer is at most the target duration.
        """
        return max(1, math.ceil(self._segment_target_s), math.floor(self._longest_segment + 0.5))

    @property
    def part_target(self) -> float:
        """PART-TARGET (seconds, 3 decimals): the configured duration, or the longest part if longer."""
        return max(self._part_target_s, math.ceil(round(self._longest_part * 1000, 6)) / 1000)

    @property
    def blocking_timeout(self) -> float:
        """How long a blocking request may wait (seconds)."""
        return BLOCKING_TIMEOUT_TARGET_DURATIONS * self.target_duration

    @property
    def advance_part_limit(self) -> int:
        """How many parts ahead of the last one a blocking request may ask for (RFC 8216bis 6.2.5.2)."""
        return math.ceil(3 / self.part_target) if self.part_target < 1 else 3

    def playlist(self) -> bytes | None:
        """The media playlist, or None until the first part is ready."""
        return self._playlist

    def master_playlist(self) -> bytes | None:
        """The master playlist: one variant (this rendition), or None until the first part is ready."""
        if self._playlist is None or not self._tracks:
            return None
        attributes = [f"BANDWIDTH={self.peak_bandwidth()}"]
        video = next((track for track in self._tracks if isinstance(track, VideoTrack)), None)
        if video is not None:
            attributes.append(f"RESOLUTION={video.width}x{video.height}")
        attributes.append('CODECS="' + ",".join(track.codec_string for track in self._tracks) + '"')
        lines = ["#EXTM3U", f"#EXT-X-VERSION:{PLAYLIST_VERSION}", "#EXT-X-STREAM-INF:" + ",".join(attributes)]
        lines += [self.chunklist_name, ""]
        return "\n".join(lines).encode()

    def peak_bandwidth(self) -> int:
        """Bits per second of the most demanding retained segment (or of the parts so far)."""
        rates = [segment.size * 8 / segment.duration for segment in self._segments.values() if segment.duration > 0]
        if not rates and self._current is not None and self._current.duration > 0:
            rates.append(self._current.size * 8 / self._current.duration)
        return max(1, round(max(rates, default=0)))

    def file(self, name: str) -> bytes | None:
        """A retained init segment, segment or part by file name."""
        return self._files.get(name)

    def open_file(self, name: str) -> BinaryIO | None:
        """`file`, opened for reading (to be sent without reading it into memory)."""
        return self._files.open(name)

    def release(self) -> None:
        """Nobody will read this segmenter's output any more: free its files."""
        self._segments.clear()
        self._playlist = None
        self._files.release()

    async def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the first part; True if there is a playlist."""
        if self._playlist is None and not self.ended:
            await self._wait_change(timeout)
        return self._playlist is not None

    def check_blocking_request(self, msn: int, part: int | None) -> None:
        """Raise `BadBlockingRequest` for a request too far ahead of the live edge (RFC 8216bis 6.2.5.2)."""
        current = self._current
        last_msn = current.msn if current is not None else self._next_msn - 1
        if msn > last_msn + 2:
            raise BadBlockingRequest(f"_HLS_msn={msn} is more than two segments beyond {last_msn}")
        if part is not None and current is not None and msn == current.msn:
            if part >= len(current.parts) + self.advance_part_limit:
                raise BadBlockingRequest(f"_HLS_part={part} is beyond the advance part limit")

    def has(self, msn: int, part: int | None) -> bool:
        """Whether the playlist holds segment ``msn`` complete (``part`` None) or its part ``part``, or later."""
        if self.ended:
            return True
        current = self._current
        if current is None:
            return msn < self._next_msn
        if part is None:
            return msn < current.msn
        return msn < current.msn or (msn == current.msn and part < len(current.parts))

    async def wait_for(self, msn: int, part: int | None, timeout: float) -> bool:
        """Block until `has(msn, part)` (True), or ``timeout`` s have passed (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.has(msn, part):
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._wait_change(remaining):
                return self.has(msn, part)
        return True

    async def wait_for_file(self, name: str, timeout: float) -> BinaryIO | None:
        """A part that is not finished yet (e.g. the preload hint's), opened once it is (`open_file`);
        None if it won't be."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            opened = self._files.open(name)
            if opened is not None or not self._may_come(name):
                return opened
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._wait_change(remaining):
                return self._files.open(name)

    def _may_come(self, name: str) -> bool:
        """Whether ``name`` is a part of this session at or just after the one being built."""
        match = _PART_NAME.fullmatch(name)
        current = self._current
        if match is None or match[3] != self.session or current is None or self.ended:
            return False
        msn, index = int(match[1]), int(match[2])
        if msn == current.msn:
            return len(current.parts) <= index < len(current.parts) + self.advance_part_limit
        return msn == current.msn + 1 and index < self.advance_part_limit

    async def _wait_change(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the next new part (or the end); False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        except TimeoutError:
            return False
        return True

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # --- writing ------------------------------------------------------------------------------

    async def run(self, subscription: Subscription) -> None:
        """Feed every packet of ``subscription`` until it ends (does not call `finish`)."""
        async for packet in subscription:
            self.feed(packet)

    def feed(self, packet: MediaPacket) -> None:
        """Take the next packet of the stream (decoding order)."""
        if packet.kind is TrackKind.DATA or self.ended:
            return
        if packet.config:
            self._set_config(packet)
            return
        if packet.codec not in ("h264", "aac"):
            self._warn_once(f"unsupported {packet.codec} {packet.kind.value}")
            return
        if not self._started and not self._start(packet):
            return
        timeline_ms = self._timeline_ms(packet.dts)
        if packet.kind is TrackKind.VIDEO:
            if self._video is None:
                if self._video_config is not None:
                    self._warn_once("video that started after the audio")
                return
            decode_time = timeline_ms * 90
            self._before_master_sample(decode_time, packet.keyframe)  # may start new tracks
            assert self._video is not None
            self._video.add(decode_time, (packet.pts - packet.dts) * 90, packet.payload, packet.keyframe)
            self._close_full_part(decode_time)
        elif self._audio is not None:  # (an audio configuration that came late joins at the next keyframe)
            decode_time = self._audio.decode_time(timeline_ms)
            if self._video is None:
                self._before_master_sample(decode_time, True)  # may start new tracks (same sample rate)
                assert self._audio is not None
                self._audio.next_time = decode_time + AAC_FRAME_SAMPLES
            self._audio.add(decode_time, packet.payload)

    def add_timed_metadata(self, id3: bytes) -> None:
        """Insert an ID3 tag (see `fmp4.id3_tag`) as an ``emsg`` before the part being built, timed at its start."""
        if self.ended:
            return
        self._pending_events.append(id3)

    def finish(self) -> None:
        """The stream ended: close the last part and segment, and end the playlist."""
        if self.ended:
            return
        pending = any(run is not None and run.pending for run in (self._video, self._audio))
        if self._started and self._last_master_time is not None and pending:
            self._close_part(self._last_master_time + self._frame_duration)
        if self._current is not None and self._current.parts:
            self._close_segment()
        self._current = None
        self.ended = True
        self.ended_at = self.clock()
        self._render()
        self._notify()

    # --- internals ----------------------------------------------------------------------------

    def _warn_once(self, problem: str) -> None:
        if problem not in self._warned:
            self._warned.add(problem)
            logger.warning("LL-HLS of %s: ignoring %s", self.stream.key if self.stream else self.session, problem)

    def _set_config(self, packet: MediaPacket) -> None:
        try:
            if packet.kind is TrackKind.VIDEO and packet.codec == "h264":
                VideoTrack.from_avc_record(1, packet.payload)  # check it before use
                self._video_config = packet.payload
            elif packet.kind is TrackKind.AUDIO and packet.codec == "aac":
                AudioTrack.from_audio_specific_config(1, packet.payload)
                self._audio_config = packet.payload
            else:
                return
        except (ValueError, IndexError):
            self._warn_once(f"invalid {packet.codec} configuration record")
            return
        if self._started:
            self._tracks_stale = self._wanted_tracks() != self._tracks

    def _audio_only_rate_changed(self, tracks: list[Track]) -> bool:
        """An audio-only rendition's timeline is in samples: its sample rate cannot change mid-stream."""
        if self._video is not None or not self._tracks or not tracks:
            return False
        return tracks[0].timescale != self._tracks[0].timescale

    def _wanted_tracks(self) -> list[Track]:
        """The tracks of the latest configuration records (no video joining an audio-only rendition)."""
        tracks: list[Track] = []
        if self._video_config is not None and (not self._started or self._video is not None):
            tracks.append(VideoTrack.from_avc_record(1, self._video_config))
        if self._audio_config is not None:
            tracks.append(AudioTrack.from_audio_specific_config(len(tracks) + 1, self._audio_config))
        if self._started and self._audio_only_rate_changed(tracks):
            self._warn_once("a sample rate change in an audio-only stream")
            return self._tracks
        return tracks

    def _start(self, packet: MediaPacket) -> bool:
        """Before the first part: True if ``packet`` starts the stream (a keyframe, or audio-only audio)."""
        if packet.kind is TrackKind.VIDEO:
            if not packet.keyframe or self._video_config is None:
                return False
        elif self._video_config is not None or self._audio_config is None:
            return False  # a video stream starts on its keyframe
        self._use_tracks(self._wanted_tracks())
        self._started = True
        self._base_ms = packet.dts
        self._wall_origin = self.clock() - self.backlog_ms / 1000
        self.media_type = "video" if self._video is not None else "audio"
        self._timescale = VIDEO_TIMESCALE if self._video is not None else self._tracks[0].timescale
        self._frame_duration = DEFAULT_VIDEO_FRAME_MS * 90 if self._video is not None else AAC_FRAME_SAMPLES
        self._open_segment(0, discontinuity=False)
        self._part_start = 0
        self._part_independent = True
        return True

    def _use_tracks(self, tracks: list[Track]) -> None:
        """Start a new init segment (the first one, or after a codec configuration change)."""
        self._tracks = tracks
        self._tracks_stale = False
        self._video = next((_VideoRun(t) for t in tracks if isinstance(t, VideoTrack)), None)
        self._audio = next((_AudioRun(t) for t in tracks if isinstance(t, AudioTrack)), None)
        media_type = "video" if self._video is not None else "audio"
        suffix = f"_{self._init_generation}" if self._init_generation else ""
        self._init_name = f"init_0_{media_type}_{self.session}{suffix}_llhls.m4s"
        self._init_generation += 1
        self._files.put(self._init_name, init_segment(tracks))
        self._inits.append(self._init_name)

    def _timeline_ms(self, dts: int) -> int:
        """Milliseconds since the first packet, kept from going back when the publisher's clock does."""
        timeline_ms = dts - self._base_ms + self._offset_ms
        if timeline_ms < self._last_timeline_ms - CLOCK_JUMP_BACK_MS:
            self._offset_ms += self._last_timeline_ms - timeline_ms
            timeline_ms = self._last_timeline_ms
        if timeline_ms > self._last_timeline_ms:
            self._last_timeline_ms = timeline_ms
        return timeline_ms

    def _master_pending(self) -> bool:
        master = self._video or self._audio
        return master is not None and bool(master.pending)

    def _before_master_sample(self, decode_time: int, boundary: bool) -> None:
        """Cut the part (and maybe the segment) before a master-track sample, where due.

        ``boundary``: the sample can start an independent part (video keyframe, or any audio frame).
        """
        last = self._last_master_time
        if last is not None and 0 < decode_time - last < self._timescale:
            self._frame_duration = decode_time - last
        self._last_master_time = decode_time
        if not self._master_pending():
            self._start_part(decode_time, boundary)
            return
        part_elapsed = decode_time - self._part_start
        segment_elapsed = decode_time - self._segment_start
        segment_target = self._segment_target_s * self._timescale
        part_target = self._part_target_s * self._timescale
        if self._video is not None:  # segments start on keyframes, once the target is reached
            segment_due = segment_elapsed >= segment_target
        else:  # audio can be cut anywhere: never beyond the target
            segment_due = segment_elapsed + self._frame_duration > segment_target
        if boundary and (segment_due or self._tracks_stale):
            self._cut(decode_time, new_segment=True, independent=True)
        elif segment_elapsed >= MAX_SEGMENT_FACTOR * segment_target:
            self._cut(decode_time, new_segment=True, independent=boundary)
        elif boundary and self._video is not None and part_elapsed >= INDEPENDENT_PART_MIN_RATIO * part_target:
            self._cut(decode_time, new_segment=False, independent=True)
        elif decode_time + self._frame_duration - self._part_start > part_target + self._timescale * CUT_TOLERANCE_S:
            self._cut(decode_time, new_segment=False, independent=boundary)

    def _close_full_part(self, decode_time: int) -> None:
        """Close the part at once when the video frame just added fills it (the next frame could not fit):
        players waiting for it get it one frame interval earlier than at the next frame. The next part's
        start is that frame's expected end; `_start_part` settles the rest when its first frame comes."""
        target = self._part_target_s * self._timescale
        tolerance = self._timescale * CUT_TOLERANCE_S
        if decode_time + 2 * self._frame_duration - self._part_start <= target + tolerance:
            return
        # (its frame's expected end, within the target: millisecond timestamps make it look a little longer)
        end = max(decode_time + 1, min(decode_time + self._frame_duration, self._part_start + round(target)))
        if self._tracks_stale or end - self._segment_start + tolerance >= self._segment_target_s * self._timescale:
            # The next keyframe ends the segment: the part is closed with it, so that the preload hint (the next
            # part of this segment) never names a part that will not come.
            return
        self._close_part(end)
        self._part_start = end
        self._part_closed_early = True
        self._render()
        self._notify()

    def _start_part(self, decode_time: int, boundary: bool) -> None:
        """The first master sample of a part after `_close_full_part`: a keyframe that is due starts the next
        segment here; the part is independent if this sample is a boundary."""
        if not self._part_closed_early:
            return
        self._part_closed_early = False
        segment_due = decode_time - self._segment_start >= self._segment_target_s * self._timescale
        if boundary and (segment_due or self._tracks_stale):
            self._close_segment()
            discontinuity = self._tracks_stale
            if discontinuity:
                self._use_tracks(self._wanted_tracks())
            self._open_segment(self._part_start, discontinuity=discontinuity)
            self._part_independent = True
            self._render()
            self._notify()
        else:
            self._part_independent = boundary

    def _cut(self, at: int, *, new_segment: bool, independent: bool) -> None:
        self._close_part(at)
        if new_segment:
            self._close_segment()
            discontinuity = self._tracks_stale
            if discontinuity:
                self._use_tracks(self._wanted_tracks())
            self._open_segment(at, discontinuity=discontinuity)
        self._part_start = at
        self._part_independent = independent
        self._render()
        self._notify()

    def _open_segment(self, start: int, *, discontinuity: bool) -> None:
        msn = self._next_msn
        self._next_msn += 1
        self._segment_start = start
        self._current = LlSegment(
            msn=msn,
            name=f"seg_0_{msn}_{self.media_type}_{self.session}_llhls.m4s",
            init_name=self._init_name,
            program_date_time=self._wall_origin + start / self._timescale,
            discontinuity=discontinuity,
        )
        if discontinuity:
            self._discontinuity_msns.append(msn)

    def _close_part(self, end: int) -> None:
        segment = self._current
        assert segment is not None
        fragments = []
        if self._video is not None:
            fragments.append(self._video.take(end))
        if self._audio is not None:
            fragments.append(self._audio.take())
        present = [fragment for fragment in fragments if fragment is not None]
        if not present:
            return
        self._fragment_sequence += 1
        events = b"".join(
            emsg_box(
                id3,
                timescale=self._timescale,
                presentation_time=self._part_start,
                event_id=(self._fragment_sequence << 8) + index,
            )
            for index, id3 in enumerate(self._pending_events)
        )
        self._pending_events.clear()
        data = events + media_fragment(self._fragment_sequence, present)
        index = len(segment.parts)
        name = f"part_0_{segment.msn}_{index}_{self.media_type}_{self.session}_llhls.m4s"
        duration = max(0, end - self._part_start) / self._timescale
        self._files.put(name, data)
        self._files.append(segment.name, data)  # the segment is its parts, back to back
        segment.add_part(Part(segment.msn, index, name, duration, self._part_independent, len(data), self._files))
        self._longest_part = max(self._longest_part, duration)

    def _close_segment(self) -> None:
        segment = self._current
        assert segment is not None
        self._current = None
        if not segment.parts:
            return
        segment.complete = True
        self._files.seal(segment.name)
        self._segments[segment.msn] = segment
        self._longest_segment = max(self._longest_segment, segment.duration)
        self._evict()

    def _evict(self) -> None:
        """Forget the segments beyond the window (plus a few) and the parts no longer listed (plus one)."""
        while len(self._segments) > self.window + EXTRA_RETAINED_SEGMENTS:
            _, segment = self._segments.popitem(last=False)
            self._files.delete(segment.name)
            for part in segment.parts:
                self._files.delete(part.name)
        listed = self._segments_with_parts()
        complete = list(self._segments.values())
        for segment in complete[: max(0, len(complete) - len(listed) - 1)]:
            for part in segment.parts:
                self._files.delete(part.name)
            segment.parts = []
        inits = {segment.init_name for segment in complete} | {self._init_name}
        for name in [name for name in self._inits if name not in inits]:
            self._inits.remove(name)
            self._files.delete(name)

    def _segments_with_parts(self) -> list[LlSegment]:
        """The complete segments whose parts the playlist lists: those near the live edge."""
        complete = self.segments
        listed: list[LlSegment] = []
        span = self._current.duration if self._current is not None else 0.0
        for segment in reversed(complete):
            if listed and span >= PART_LISTING_TARGET_DURATIONS * self.target_duration:
                break
            listed.append(segment)
            span += segment.duration
        return listed[::-1]

    def _render(self) -> None:
        listed = self.segments
        if self._current is not None and self._current.parts:
            listed.append(self._current)
        if not listed:
            self._playlist = None
            return
        with_parts = {segment.msn for segment in self._segments_with_parts()}
        if self._current is not None:
            with_parts.add(self._current.msn)
        first = listed[0].msn
        part_target = self.part_target
        lines = [
            "#EXTM3U",
            f"#EXT-X-VERSION:{PLAYLIST_VERSION}",
            f"#EXT-X-TARGETDURATION:{self.target_duration}",
            f"#EXT-X-PART-INF:PART-TARGET={part_target:.3f}",
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
            f"PART-HOLD-BACK={3 * part_target:.3f},HOLD-BACK={3 * self.target_duration:.3f}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        earlier_discontinuities = sum(1 for msn in self._discontinuity_msns if msn < first)
        if earlier_discontinuities:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{earlier_discontinuities}")
        lines.append(f'#EXT-X-MAP:URI="{listed[0].init_name}"')
        for position, segment in enumerate(listed):
            if position and segment.discontinuity:
                lines += ["#EXT-X-DISCONTINUITY", f'#EXT-X-MAP:URI="{segment.init_name}"']
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_iso8601(segment.program_date_time)}")
            if segment.msn in with_parts:
                for part in segment.parts:
                    independent = ",INDEPENDENT=YES" if part.independent else ""
                    lines.append(f'#EXT-X-PART:DURATION={part.duration:.5f},URI="{part.name}"{independent}')
            if segment.complete:
                lines += [f"#EXTINF:{segment.duration:.5f},", segment.name]
        current = self._current
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        elif current is not None:
            hint = f"part_0_{current.msn}_{len(current.parts)}_{self.media_type}_{self.session}_llhls.m4s"
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{hint}"')
        lines.append("")
        self._playlist = "\n".join(lines).encode()


def _iso8601(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LlHlsPackager(StreamPackager[LlHlsSegmenter]):
    """Runs an `LlHlsSegmenter` for every live stream of a registry (see `StreamPackager`)."""

    label = "LL-HLS"

    def make_segmenter(self, config: ApplicationConfig, stream: LiveStream) -> LlHlsSegmenter:
        files = self.make_files(f"llhls-{stream.key.name}")
        return LlHlsSegmenter(config, stream=stream, clock=self.clock, files=files)

    def segment_duration(self, config: ApplicationConfig) -> float:
        return config.llhls_segment_duration
