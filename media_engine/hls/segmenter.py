"""HLS (MPEG-TS) segmentation of live streams, kept in memory or as files (`store`).

`HlsSegmenter` turns one stream's packets into a rolling window of TS segments and the media
playlist listing them. Segments are cut on video keyframes once the application's target
duration is reached (by duration alone for audio-only streams). `HlsPackager` runs one
segmenter per live stream of a `StreamRegistry`: it subscribes when a stream starts, and keeps
the finished playlist (with ``#EXT-X-ENDLIST``) for a while after the stream ends.

Timed metadata (`HlsSegmenter.add_timed_metadata`, ID3 tags) goes into the TS output before the next
packet, on a metadata stream that the PMT declares from the first tag on.

Segment names are ``seg_<session>_<sequence>.ts``: the session part changes at each start of a
stream, so that a player or cache never mixes up the segments of two successive publications.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from media_engine.control import ApplicationConfig
from media_engine.hls.mpegts import AacConfig, AvcConfig, TsMuxer
from media_engine.hls.packager import StreamPackager
from media_engine.hls.store import Files, MemoryFiles
from media_engine.packets import MediaPacket, TrackKind
from media_engine.registry import LiveStream, Subscription

logger = logging.getLogger(__name__)

# Segments kept in memory beyond the playlist window: a player that loaded the playlist just
# before it moved on can still fetch the segment that left it.
EXTRA_RETAINED_SEGMENTS = 1
# Without keyframes, a segment is cut anyway after this many target durations (bounds memory).
MAX_SEGMENT_FACTOR = 4
MAX_SEGMENT_MIN_MS = 20_000
# Timed metadata waiting for the first packet is bounded (a stream that never starts).
MAX_PENDING_EVENTS = 64
# The segment being built goes to its file in pieces of about this size as it grows, instead of
# whole at its end: the heap never holds a segment (1.3 MB for 4 s at 2.6 Mb/s).
SEGMENT_SPILL_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Segment:
    """One finished TS segment (its bytes are in the segmenter's files)."""

    sequence: int
    name: str
    duration: float  # seconds, from the stream's timestamps
    size: int  # bytes
    created_at: float  # clock() when it was cut
    keyframe: bool  # starts on a video keyframe (or the stream is audio-only)
    files: Files = field(repr=False, compare=False)

    @property
    def data(self) -> bytes:
        """The segment's bytes (b"" once it has left the retained window)."""
        return self.files.get(self.name) or b""

    def open(self) -> BinaryIO | None:
        """The segment opened for reading (None once it has left the retained window)."""
        return self.files.open(self.name)


class HlsSegmenter:
    """Segments one stream. Feed it packets in order (`feed`, or `run` on a subscription)."""

    def __init__(
        self,
        config: ApplicationConfig,
        *,
        stream: LiveStream | None = None,
        session: str | None = None,
        clock: Callable[[], float] = time.time,
        files: Files | None = None,
    ) -> None:
        """``files``: where segments are kept (default: in memory); released by `release`."""
        self.config = config
        self.stream = stream
        self.session = session or os.urandom(4).hex()
        self.clock = clock
        self.files: Files = files if files is not None else MemoryFiles()
        self.target_ms = max(1, round(config.hls_segment_duration * 1000))
        self.window = max(1, config.hls_segment_count)
        self.max_segment_ms = max(self.target_ms * MAX_SEGMENT_FACTOR, MAX_SEGMENT_MIN_MS)
        self.ended = False
        self.ended_at: float | None = None
        self.backlog_ms = 0  # (a GOP replayed on demand; TS carries no wall-clock time: unused)
        self._segments: OrderedDict[str, Segment] = OrderedDict()
        self._next_sequence = 0
        self._longest = 0.0
        self._playlist: bytes | None = None
        self._ready = asyncio.Event()
        # codec state
        self._video_config: bytes | None = None
        self._audio_config: bytes | None = None
        self._muxer: TsMuxer | None = None
        self._audio_only = False
        # current segment
        self._seg_start_ms = 0
        self._seg_keyframe = False
        self._seg_packets = 0
        self._seg_name = ""
        self._seg_bytes = 0  # written to the segment's file so far
        self._end_ms = 0  # estimated end (dts + frame duration) of what was written
        self._last_video_dts: int | None = None
        self._last_audio_dts: int | None = None
        self._video_frame_ms = 40
        self._audio_frame_ms = 23
        self._need_keyframe = True
        self._resume_after_ms: int | None = None
        self._pending_events: list[bytes] = []
        self._warned: set[str] = set()

    # --- reading ------------------------------------------------------------------------------

    @property
    def segments(self) -> list[Segment]:
        """The segments listed in the playlist, oldest first."""
        return list(self._segments.values())[-self.window :]

    def segment(self, name: str) -> Segment | None:
        """A retained segment by file name."""
        return self._segments.get(name)

    @property
    def target_duration(self) -> int:
        """EXT-X-TARGETDURATION: never below the configured duration, never decreasing."""
        return max(math.ceil(self.config.hls_segment_duration), math.ceil(round(self._longest, 3)))

    def playlist(self) -> bytes | None:
        """The media playlist, or None while there is no segment yet."""
        return self._playlist

    async def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the first segment; True if there is a playlist."""
        if self._playlist is None and not self.ended:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                pass
        return self._playlist is not None

    # --- writing ------------------------------------------------------------------------------

    async def run(self, subscription: Subscription) -> None:
        """Feed every packet of ``subscription`` until it ends (does not call `finish`)."""
        async for packet in subscription:
            self.feed(packet)

    def feed(self, packet: MediaPacket) -> None:
        """Take the next packet of the stream (decoding order)."""
        kind = packet.kind
        if kind is TrackKind.DATA or self.ended:
            return
        if packet.config:
            self._set_config(packet)
            return
        if kind is TrackKind.VIDEO:
            if packet.codec != "h264":
                self._warn_once(f"unsupported {packet.codec} video")
                return
            if self._video_config is None:
                return
        elif packet.codec != "aac":
            self._warn_once(f"unsupported {packet.codec} audio")
            return
        elif self._audio_config is None:
            return
        dts = packet.dts
        if self._need_keyframe:
            if not self._resync(packet):
                return
        else:
            muxer = self._muxer
            assert muxer is not None
            elapsed = dts - self._seg_start_ms
            if elapsed < -1000:  # the publisher's clock went back: measure from here on
                self._seg_start_ms = dts
                elapsed = 0
            if kind is TrackKind.VIDEO:
                if not muxer.has_video:  # video showed up in an audio-only stream
                    if not packet.keyframe:
                        return
                    self._cut(dts, reconfigure=True)
                elif packet.keyframe and elapsed >= self.target_ms:
                    self._cut(dts)
                elif elapsed >= self.max_segment_ms:
                    self._cut(dts, keyframe=packet.keyframe)
            else:
                if not muxer.has_audio:  # audio config arrived late: joins at the next cut
                    return
                if self._audio_only and elapsed >= self.target_ms:
                    self._cut(dts)
                elif elapsed >= self.max_segment_ms:
                    self._cut(dts, keyframe=False)
        self._write(packet)

    def add_timed_metadata(self, id3: bytes) -> None:
        """Insert an ID3 tag (see `fmp4.id3_tag`) into the TS output, presented with the next packet."""
        if self.ended:
            return
        if len(self._pending_events) >= MAX_PENDING_EVENTS:
            self._warn_once("timed metadata beyond the pending limit")
            return
        self._pending_events.append(id3)

    def finish(self) -> None:
        """The stream ended: close the last segment and end the playlist."""
        if self.ended:
            return
        if self._muxer is not None and self._seg_packets:
            self._close_segment(self._end_ms)
        self.ended = True
        self.ended_at = self.clock()
        self._render()
        self._ready.set()

    def release(self) -> None:
        """Nobody will read this segmenter's output any more: free its segments."""
        self._segments.clear()
        self._playlist = None
        self.files.release()

    def resync(self) -> None:
        """Packets were lost (e.g. we were dropped as a slow reader): restart at the next keyframe."""
        if self._muxer is not None and self._seg_packets:
            self._close_segment(self._end_ms)
        last = [d for d in (self._last_video_dts, self._last_audio_dts) if d is not None]
        self._resume_after_ms = max(last) if last else None
        self._need_keyframe = True

    # --- internals ----------------------------------------------------------------------------

    def _warn_once(self, problem: str) -> None:
        if problem not in self._warned:
            self._warned.add(problem)
            logger.warning("HLS of %s: ignoring %s", self.stream.key if self.stream else self.session, problem)

    def _set_config(self, packet: MediaPacket) -> None:
        try:
            if packet.kind is TrackKind.VIDEO and packet.codec == "h264":
                AvcConfig(packet.payload)  # check it before use
                self._video_config = packet.payload
                if self._muxer is not None and self._muxer.has_video:
                    self._muxer.set_video_config(packet.payload)
            elif packet.kind is TrackKind.AUDIO and packet.codec == "aac":
                AacConfig(packet.payload)
                self._audio_config = packet.payload
                if self._muxer is not None and self._muxer.has_audio:
                    self._muxer.set_audio_config(packet.payload)
        except (ValueError, IndexError):
            self._warn_once(f"invalid {packet.codec} configuration record")

    def _resync(self, packet: MediaPacket) -> bool:
        """While waiting for a starting point: True if ``packet`` opens a new segment."""
        if self._resume_after_ms is not None and packet.dts <= self._resume_after_ms:
            return False
        if packet.kind is TrackKind.VIDEO:
            if not packet.keyframe:
                return False
        elif self._video_config is not None:
            return False  # a video stream: start on its keyframe
        if self._muxer is None:
            self._muxer = TsMuxer(self._video_config, self._audio_config, base_ms=packet.dts)
        else:
            self._muxer.set_tracks(self._video_config, self._audio_config)
        self._audio_only = not self._muxer.has_video
        self._need_keyframe = False
        self._resume_after_ms = None
        self._open_segment(packet.dts, True)
        return True

    def _write(self, packet: MediaPacket) -> None:
        muxer = self._muxer
        assert muxer is not None
        dts = packet.dts
        if self._pending_events:
            self._write_events(muxer, packet.pts)
        if packet.kind is TrackKind.VIDEO:
            last = self._last_video_dts
            if last is not None and 0 < dts - last < 1000:
                self._video_frame_ms = dts - last
            self._last_video_dts = dts
            muxer.write_video(dts, packet.pts, packet.payload, packet.keyframe)
            end = dts + self._video_frame_ms
        else:
            last = self._last_audio_dts
            if last is not None and 0 < dts - last < 1000:
                self._audio_frame_ms = dts - last
            self._last_audio_dts = dts
            muxer.write_audio(packet.pts, packet.payload)
            end = dts + self._audio_frame_ms
        if end > self._end_ms:
            self._end_ms = end
        self._seg_packets += 1
        if muxer.pending_size >= SEGMENT_SPILL_BYTES:
            self._spill()

    def _spill(self) -> None:
        """Append what the muxer holds to the file of the segment being built."""
        assert self._muxer is not None
        data = self._muxer.take()
        if data:
            self.files.append(self._seg_name, data)
            self._seg_bytes += len(data)

    def _write_events(self, muxer: TsMuxer, pts: int) -> None:
        if not muxer.has_metadata:
            muxer.enable_timed_metadata()
            muxer.write_tables()  # the new PMT at once: this segment carries the tags too
        for id3 in self._pending_events:
            try:
                muxer.write_timed_metadata(pts, id3)
            except ValueError:
                self._warn_once("a timed metadata tag too large for MPEG-TS")
        self._pending_events.clear()

    def _open_segment(self, start_ms: int, keyframe: bool) -> None:
        assert self._muxer is not None
        self._seg_start_ms = start_ms
        self._seg_keyframe = keyframe
        self._seg_packets = 0
        self._seg_name = f"seg_{self.session}_{self._next_sequence}.ts"
        self._seg_bytes = 0
        self._end_ms = start_ms
        self._muxer.write_tables()

    def _cut(self, at_ms: int, *, keyframe: bool = True, reconfigure: bool = False) -> None:
        self._close_segment(at_ms)
        muxer = self._muxer
        assert muxer is not None
        if reconfigure or (muxer.has_video, muxer.has_audio) != (
            self._video_config is not None,
            self._audio_config is not None,
        ):
            muxer.set_tracks(self._video_config, self._audio_config)
            self._audio_only = not muxer.has_video
        self._open_segment(at_ms, keyframe)

    def _close_segment(self, end_ms: int) -> None:
        muxer = self._muxer
        assert muxer is not None
        muxer.flush()
        self._spill()
        duration = max(0, end_ms - self._seg_start_ms) / 1000
        sequence = self._next_sequence
        self._next_sequence += 1
        name = self._seg_name
        self.files.seal(name)
        self._segments[name] = Segment(
            sequence, name, duration, self._seg_bytes, self.clock(), self._seg_keyframe, self.files
        )
        while len(self._segments) > self.window + EXTRA_RETAINED_SEGMENTS:
            old_name, _ = self._segments.popitem(last=False)
            self.files.delete(old_name)
        if duration > self._longest:
            self._longest = duration
        self._seg_packets = 0
        self._render()
        self._ready.set()

    def _render(self) -> None:
        segments = self.segments
        if not segments:
            self._playlist = None
            return
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{self.target_duration}",
            f"#EXT-X-MEDIA-SEQUENCE:{segments[0].sequence}",
        ]
        for segment in segments:
            lines.append(f"#EXTINF:{segment.duration:.3f},")
            lines.append(segment.name)
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        lines.append("")
        self._playlist = "\n".join(lines).encode()


class HlsPackager(StreamPackager[HlsSegmenter]):
    """Runs an `HlsSegmenter` for every live stream of a registry (see `StreamPackager`)."""

    label = "HLS"

    def make_segmenter(self, config: ApplicationConfig, stream: LiveStream) -> HlsSegmenter:
        return HlsSegmenter(config, stream=stream, clock=self.clock, files=self.make_files(f"hls-{stream.key.name}"))

    def segment_duration(self, config: ApplicationConfig) -> float:
        return config.hls_segment_duration
