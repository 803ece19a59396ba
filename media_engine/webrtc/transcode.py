"""The transcodes WebRTC needs, each on a thread of its own so the engine's event loop never
waits for a codec: AAC→Opus (WHEP viewers of RTMP streams), Opus→AAC (WHIP publishers, for HLS
and RTMP) and VP8→H.264 (WHIP publishers whose browser sends no H.264).

A converter is a plain object with ``convert(item) -> list`` run on the thread; `TranscoderThread`
feeds it from a bounded queue and hands the results back on the loop.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import av

logger = logging.getLogger(__name__)

OPUS_RATE = 48000
OPUS_FRAME = 960  # 20 ms
OPUS_CHANNELS = 2
# What WebRTC viewers of an AAC stream get (the stream info API lists it as an output track).
OPUS_BITRATE = 96000
AAC_FRAME = 1024


class TranscoderThread:
    """Run ``converter.convert`` on a thread; ``deliver`` gets each result on ``loop``.

    Items beyond ``maxsize`` waiting are dropped (a converter that cannot keep up loses input rather
    than delaying it); an item that fails to convert is logged at debug level and skipped.
    """

    def __init__(
        self,
        name: str,
        converter: Any,
        deliver: Callable[[Any], None],
        loop: asyncio.AbstractEventLoop,
        maxsize: int = 256,
    ) -> None:
        self.name = name
        self.converter = converter
        self.deliver = deliver
        self.loop = loop
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def close(self) -> None:
        """Stop after what is queued (does not wait)."""
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            self._drain_and_stop()

    def _drain_and_stop(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put_nowait(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                results = self.converter.convert(item)
            except (av.FFmpegError, ValueError) as error:
                logger.debug("%s: dropped an input: %r", self.name, error)
                continue
            except Exception:
                logger.exception("%s: converter failed", self.name)
                continue
            if results:
                try:
                    self.loop.call_soon_threadsafe(self._deliver_all, results)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    return

    def _deliver_all(self, results: list) -> None:
        for result in results:
            self.deliver(result)


class AacToOpus:
    """``(raw AAC frame, pts in ms)`` → ``[(Opus packet, pts in 1/48000 s)]``, stereo 48 kHz, 20 ms packets."""

    def __init__(self, audio_specific_config: bytes, bitrate: int = OPUS_BITRATE) -> None:
        self.decoder = av.CodecContext.create("aac", "r")
        self.decoder.extradata = audio_specific_config
        self.resampler = av.AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE, frame_size=OPUS_FRAME)
        self.encoder = av.CodecContext.create("libopus", "w")
        self.encoder.sample_rate = OPUS_RATE
        self.encoder.layout = "stereo"
        self.encoder.format = "s16"
        self.encoder.time_base = fractions.Fraction(1, OPUS_RATE)
        self.encoder.bit_rate = bitrate
        self.encoder.options = {"application": "lowdelay"}
        self._next_pts: int | None = None

    def convert(self, item: tuple[bytes, int]) -> list[tuple[bytes, int]]:
        payload, pts_ms = item
        if self._next_pts is None:
            self._next_pts = pts_ms * (OPUS_RATE // 1000)
        out = []
        for frame in self.decoder.decode(av.Packet(payload)):
            frame.pts = None
            for resampled in self.resampler.resample(frame):
                resampled.pts = self._next_pts
                resampled.time_base = self.encoder.time_base
                self._next_pts += resampled.samples
                for packet in self.encoder.encode(resampled):
                    out.append((bytes(packet), resampled.pts))
        return out


class OpusToAac:
    """``(Opus packet, pts in ms)`` → ``[(raw AAC frame, pts in ms)]``; ``audio_specific_config`` once open."""

    def __init__(self, bitrate: int = 128000) -> None:
        self.decoder = av.CodecContext.create("libopus", "r")
        self.decoder.sample_rate = OPUS_RATE
        self.decoder.layout = "stereo"
        self.resampler = av.AudioResampler(format="fltp", layout="stereo", rate=OPUS_RATE, frame_size=AAC_FRAME)
        self.encoder = av.CodecContext.create("aac", "w")
        self.encoder.sample_rate = OPUS_RATE
        self.encoder.layout = "stereo"
        self.encoder.format = "fltp"
        self.encoder.time_base = fractions.Fraction(1, OPUS_RATE)
        self.encoder.bit_rate = bitrate
        self.encoder.open()
        self.audio_specific_config = bytes(self.encoder.extradata or b"")
        self._first_ms: int | None = None
        self._samples = 0

    def convert(self, item: tuple[bytes, int]) -> list[tuple[bytes, int]]:
        payload, pts_ms = item
        if self._first_ms is None:
            self._first_ms = pts_ms
        out = []
        for frame in self.decoder.decode(av.Packet(payload)):
            frame.pts = None
            for resampled in self.resampler.resample(frame):
                resampled.pts = self._samples
                resampled.time_base = self.encoder.time_base
                self._samples += resampled.samples
                for packet in self.encoder.encode(resampled):
                    pts = packet.pts if packet.pts is not None else resampled.pts
                    out.append((bytes(packet), self._first_ms + pts * 1000 // OPUS_RATE))
        return out


class Vp8ToH264:
    """``(VP8 frame, pts in ms)`` → ``[(H.264 Annex B access unit, pts in ms)]``; a keyframe every
    ``keyframe_interval_ms`` (and SPS/PPS with each), no B-frames, no encoder delay."""

    def __init__(self, keyframe_interval_ms: int = 2000) -> None:
        self.decoder = av.CodecContext.create("vp8", "r")
        self.keyframe_interval_ms = keyframe_interval_ms
        self.encoder: av.VideoCodecContext | None = None
        self._last_keyframe_ms: int | None = None

    def _open_encoder(self, width: int, height: int) -> av.VideoCodecContext:
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height = width, height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = fractions.Fraction(1, 1000)
        encoder.framerate = fractions.Fraction(30, 1)
        encoder.gop_size = 10000  # keyframes are forced by time below
        encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
        self._last_keyframe_ms = None
        return encoder

    def convert(self, item: tuple[bytes, int]) -> list[tuple[bytes, int]]:
        payload, pts_ms = item
        out = []
        for frame in self.decoder.decode(av.Packet(payload)):
            if self.encoder is None or (self.encoder.width, self.encoder.height) != (frame.width, frame.height):
                self.encoder = self._open_encoder(frame.width, frame.height)
            picture = frame.reformat(format="yuv420p") if frame.format.name != "yuv420p" else frame
            picture.pts = pts_ms
            picture.time_base = self.encoder.time_base
            due = self._last_keyframe_ms is None or pts_ms - self._last_keyframe_ms >= self.keyframe_interval_ms
            picture.pict_type = av.video.frame.PictureType.I if due else av.video.frame.PictureType.NONE
            if due:
                self._last_keyframe_ms = pts_ms
            for packet in self.encoder.encode(picture):
                out.append((bytes(packet), packet.pts if packet.pts is not None else pts_ms))
        return out
