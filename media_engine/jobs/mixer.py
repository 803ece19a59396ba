"""A live mixer for Celery workers (WCS /mixer/*): several live streams composed into one output
stream published into the engine over RTMP.

* `MixerSettings` (with its `MixerInput`s) says what the mixer should be now; ``settings()`` is
  asked about once a second, so streams are added and removed, muted and watermarked while it runs.
* Each input is read by an `_InputFeed` thread (a `SourceReader` on the engine's RTMP URL, PyAV
  decoders): it keeps the input's latest picture and a short buffer of its audio, resampled to the
  output's rate and channels. An input that cannot be read (not live yet, gone) is retried.
* The mixer's own thread runs the output clock: every ``1/fps`` s it composes the latest pictures
  into a layout on the background (yuv420p planes with numpy, `media_engine.jobs.watermark`) and
  encodes libx264; every 1024 samples it mixes the inputs' audio (each times its level, silent
  when muted) and encodes AAC. Timestamps follow the wall clock from the first output frame.

Layouts (`LAYOUTS`): ``grid`` (the default: columns = ceil(sqrt(n)), rows as needed),
``horizontal`` (one row), ``vertical`` (one column). Each picture keeps its proportions inside its
cell, centred; a video-muted input leaves its cell showing the background.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from media_engine.jobs.events import MediaEvent, StateCallback
from media_engine.jobs.push import TargetFailed, TargetWriter
from media_engine.jobs.source import POLL_INTERVAL, SourceEnd, SourceReader, SourceUnavailable, StopPoller
from media_engine.jobs.watermark import Overlay, Planes

__all__ = ["LAYOUTS", "MixerInput", "MixerProgress", "MixerSettings", "Mixer", "TargetFailed", "layout_cells"]

logger = logging.getLogger(__name__)

LAYOUTS = ("grid", "horizontal", "vertical")
MS = Fraction(1, 1000)
AUDIO_FRAME = 1024  # AAC's frame size
AUDIO_BUFFER_SECONDS = 0.5  # an input's audio beyond this is dropped (the engine's GOP burst, a late mixer)
RETRY_SECONDS = 2.0  # between attempts to read an input that is not readable
SETTINGS_INTERVAL = 1.0
MAX_LAG_SECONDS = 1.0  # a mixer this far behind its clock skips ahead instead of bursting


@dataclass(frozen=True)
class MixerInput:
    """One input: ``url`` None while its stream is not live; ``audio_level`` a gain (1.0 unchanged)."""

    name: str
    url: str | None
    audio_level: float = 1.0
    video_muted: bool = False
    watermark: Overlay | None = field(default=None, compare=False)
    watermark_key: str = ""  # what the watermark is (file + placement), to compare settings


@dataclass(frozen=True)
class MixerSettings:
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    video_bitrate: int = 2_000_000
    audio_bitrate: int = 128_000
    sample_rate: int = 48_000
    preset: str = "veryfast"
    has_video: bool = True
    has_audio: bool = True
    layout: str = "grid"
    background: Planes | None = field(default=None, compare=False)  # at width x height
    watermark: Overlay | None = field(default=None, compare=False)
    inputs: tuple[MixerInput, ...] = ()

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout {self.layout!r} is not one of {', '.join(LAYOUTS)}")
        if not (self.has_video or self.has_audio):
            raise ValueError("a mixer needs video or audio")
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            raise ValueError("the mixer's size must be even and at least 16x16")


@dataclass
class MixerProgress:
    video_frames: int = 0
    audio_frames: int = 0
    inputs_live: int = 0


def layout_cells(layout: str, count: int, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """(left, top, width, height) of each of ``count`` cells, even numbers."""
    if count <= 0:
        return []
    if layout == "horizontal":
        columns, rows = count, 1
    elif layout == "vertical":
        columns, rows = 1, count
    else:
        columns = math.ceil(math.sqrt(count))
        rows = math.ceil(count / columns)
    cell_w, cell_h = (width // columns) & ~1, (height // rows) & ~1
    return [((i % columns) * cell_w, (i // columns) * cell_h, cell_w, cell_h) for i in range(count)]


def fit(picture: tuple[int, int], cell: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """A picture of size ``picture`` scaled into ``cell`` keeping its proportions, centred."""
    left, top, cell_w, cell_h = cell
    pic_w, pic_h = picture
    scale = min(cell_w / pic_w, cell_h / pic_h)
    w, h = max(2, int(pic_w * scale) & ~1), max(2, int(pic_h * scale) & ~1)
    return left + ((cell_w - w) // 2 & ~1), top + ((cell_h - h) // 2 & ~1), w, h


class _InputFeed:
    """Reads one input in a thread of its own: its latest picture and a buffer of its audio."""

    def __init__(self, url: str, sample_rate: int, want_video: bool, want_audio: bool) -> None:
        self.url = url
        self.label = url.split("?", 1)[0]  # for logs: a play URL may carry a token
        self.sample_rate = sample_rate
        self.want_video = want_video
        self.want_audio = want_audio
        self.picture: av.VideoFrame | None = None
        self.live = False
        self._audio: deque[np.ndarray] = deque()
        self._audio_samples = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"mixer-input {self.label}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()

    def take_audio(self, count: int) -> np.ndarray:
        """``count`` samples (2, count) float32; silence where the input has none."""
        out = np.zeros((2, count), np.float32)
        filled = 0
        with self._lock:
            while filled < count and self._audio:
                chunk = self._audio[0]
                step = min(count - filled, chunk.shape[1])
                out[:, filled : filled + step] = chunk[:, :step]
                if step == chunk.shape[1]:
                    self._audio.popleft()
                else:
                    self._audio[0] = chunk[:, step:]
                self._audio_samples -= step
                filled += step
        return out

    def _keep_audio(self, samples: np.ndarray) -> None:
        limit = int(self.sample_rate * AUDIO_BUFFER_SECONDS)
        with self._lock:
            self._audio.append(samples)
            self._audio_samples += samples.shape[1]
            while self._audio_samples > limit and self._audio:
                self._audio_samples -= self._audio.popleft().shape[1]

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                self._read()
            except (SourceUnavailable, av.FFmpegError, ValueError) as error:
                logger.debug("mixer input %s: %s", self.label, error)
            self.live = False
            with self._lock:
                self._audio.clear()
                self._audio_samples = 0
            self.picture = None
            self._closed.wait(RETRY_SECONDS)

    def _read(self) -> None:
        reader = SourceReader(self.url, open_timeout=5.0, stall_timeout=5.0).start()
        try:
            if not reader.wait_open(self._closed.is_set):
                return
            decoders: dict[int, av.CodecContext] = {}
            for stream in reader.streams:
                if (stream.type == "video" and self.want_video) or (stream.type == "audio" and self.want_audio):
                    decoder = av.CodecContext.create(stream.codec_context.name, "r")
                    decoder.extradata = stream.codec_context.extradata
                    decoder.thread_count = 1
                    decoders[stream.index] = decoder
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=self.sample_rate)
            self.live = True
            while not self._closed.is_set():
                item = reader.get(POLL_INTERVAL)
                if item is None:
                    continue
                if isinstance(item, SourceEnd):
                    return
                decoder = decoders.get(item.stream_index)
                if decoder is None:
                    continue
                try:
                    frames = decoder.decode(item)
                except av.FFmpegError as error:
                    logger.debug("mixer input %s: undecodable packet: %s", self.label, error)
                    continue
                for frame in frames:
                    if isinstance(frame, av.VideoFrame):
                        self.picture = frame
                    else:
                        for converted in resampler.resample(frame):
                            self._keep_audio(converted.to_ndarray().astype(np.float32, copy=False))
        finally:
            reader.close()


class Mixer:
    """Publishes the mix to ``target`` until ``should_stop()``; see the module docstring.

    ``on_state("started", None)`` once the engine took the output; ``on_progress`` about once a second.
    """

    def __init__(
        self,
        target: str,
        settings: Callable[[], MixerSettings],
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_state: StateCallback | None = None,
        on_progress: Callable[[MixerProgress], None] | None = None,
        open_timeout: float = 10.0,
        write_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.settings_source = settings
        self.should_stop = StopPoller(should_stop)
        self.on_state = on_state
        self.on_progress = on_progress
        self.open_timeout = open_timeout
        self.write_timeout = write_timeout
        self.clock = clock
        self.settings = settings()
        self.progress = MixerProgress()
        self._feeds: dict[str, _InputFeed] = {}
        self._last_settings = clock()
        self._last_progress = 0.0

    # -- driving ----------------------------------------------------------------------------------

    def run(self) -> None:
        settings = self.settings
        container = av.open(self.target, "w", format="flv")
        video = audio = None
        if settings.has_video:
            video = container.add_stream("libx264", rate=Fraction(settings.fps).limit_denominator(1001))
            context = video.codec_context
            context.width, context.height = settings.width, settings.height
            context.pix_fmt = "yuv420p"
            context.time_base = MS
            context.bit_rate = settings.video_bitrate
            context.gop_size = max(1, round(settings.fps * 2))
            context.thread_count = 1
            context.options = {"preset": settings.preset, "bf": "0", "tune": "zerolatency"}
            context.open()
        if settings.has_audio:
            audio = container.add_stream("aac", rate=settings.sample_rate)
            context = audio.codec_context
            context.layout = "stereo"
            context.format = "fltp"
            context.time_base = Fraction(1, settings.sample_rate)
            context.bit_rate = settings.audio_bitrate
            context.open()
        writer = TargetWriter(container, self.target, self.open_timeout, self.write_timeout).start()
        started = False
        try:
            self._update_feeds()
            origin = self.clock()
            video_index = audio_samples = 0
            while not self.should_stop():
                writer.check()
                if not started and writer.connected_at:
                    started = True
                    if self.on_state is not None:
                        self.on_state(MediaEvent.STARTED, None)
                self._refresh_settings()
                elapsed = self.clock() - origin
                due_video = video_index / settings.fps if video else math.inf
                due_audio = audio_samples / settings.sample_rate if audio else math.inf
                if min(due_video, due_audio) < elapsed - MAX_LAG_SECONDS:
                    # Far behind (an overloaded machine): skip ahead rather than send a burst.
                    if video:
                        video_index = math.ceil((elapsed - 0.1) * settings.fps)
                    if audio:
                        audio_samples = math.ceil((elapsed - 0.1) * settings.sample_rate / AUDIO_FRAME) * AUDIO_FRAME
                    continue
                if video and due_video <= elapsed:
                    frame = self.compose().to_frame()
                    frame.pts, frame.time_base = round(due_video * 1000), MS
                    self._send(writer, video.encode(frame))
                    video_index += 1
                    self.progress.video_frames += 1
                elif audio and due_audio <= elapsed:
                    frame = av.AudioFrame.from_ndarray(self.mix(AUDIO_FRAME), format="fltp", layout="stereo")
                    frame.sample_rate = settings.sample_rate
                    frame.pts, frame.time_base = audio_samples, Fraction(1, settings.sample_rate)
                    self._send(writer, audio.encode(frame))
                    audio_samples += AUDIO_FRAME
                    self.progress.audio_frames += 1
                else:
                    time.sleep(min(0.02, max(0.0, min(due_video, due_audio) - elapsed)))
                self._report()
        finally:
            for feed in self._feeds.values():
                feed.close()
            self._feeds = {}
            if writer.error is None and not self.should_stop.stopping:
                writer.finish(wait=2.0)
            writer.abandon()
            self._report(force=True)
            if self.on_state is not None:
                self.on_state(MediaEvent.STOPPED, None)

    def _send(self, writer: TargetWriter, packets) -> None:
        for packet in packets:
            while not writer.put(packet, POLL_INTERVAL):
                writer.check()
                if self.should_stop():
                    return

    def _refresh_settings(self) -> None:
        now = self.clock()
        if now - self._last_settings < SETTINGS_INTERVAL:
            return
        self._last_settings = now
        try:
            wanted = self.settings_source()
        except ValueError as error:
            logger.warning("mixer %s: settings not applied: %s", self.target.split("?", 1)[0], error)
            return
        # The output's size, rate and tracks are fixed while it runs; the rest changes at once.
        current = self.settings
        self.settings = MixerSettings(
            width=current.width,
            height=current.height,
            fps=current.fps,
            video_bitrate=current.video_bitrate,
            audio_bitrate=current.audio_bitrate,
            sample_rate=current.sample_rate,
            preset=current.preset,
            has_video=current.has_video,
            has_audio=current.has_audio,
            layout=wanted.layout,
            background=wanted.background,
            watermark=wanted.watermark,
            inputs=wanted.inputs,
        )
        self._update_feeds()

    def _update_feeds(self) -> None:
        """One feed per input with a URL: new ones start, removed (or moved) ones end."""
        wanted = {entry.name: entry.url for entry in self.settings.inputs if entry.url}
        for name in list(self._feeds):
            if wanted.get(name) != self._feeds[name].url:
                self._feeds.pop(name).close()
        for name, url in wanted.items():
            if name not in self._feeds:
                self._feeds[name] = _InputFeed(
                    url, self.settings.sample_rate, self.settings.has_video, self.settings.has_audio
                )

    # -- media ------------------------------------------------------------------------------------

    def compose(self) -> Planes:
        settings = self.settings
        if settings.background is not None:
            canvas = Planes(settings.background.y.copy(), settings.background.u.copy(), settings.background.v.copy())
        else:
            canvas = Planes.blank(settings.width, settings.height)
        cells = layout_cells(settings.layout, len(settings.inputs), settings.width, settings.height)
        for entry, cell in zip(settings.inputs, cells, strict=True):
            feed = self._feeds.get(entry.name)
            picture = feed.picture if feed is not None else None
            if picture is None or entry.video_muted:
                continue
            left, top, width, height = fit((picture.width, picture.height), cell)
            tile = Planes.from_frame(picture, width, height)
            if entry.watermark is not None:
                entry.watermark.draw(tile)
            canvas.paste(tile, left, top)
        if settings.watermark is not None:
            settings.watermark.draw(canvas)
        return canvas

    def mix(self, count: int) -> np.ndarray:
        mixed = np.zeros((2, count), np.float32)
        for entry in self.settings.inputs:
            feed = self._feeds.get(entry.name)
            if feed is None:
                continue
            samples = feed.take_audio(count)  # taken even when silent: the buffer keeps its pace
            if entry.audio_level > 0:
                mixed += samples * entry.audio_level
        np.clip(mixed, -1.0, 1.0, out=mixed)
        return mixed

    def _report(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last_progress < 1.0:
            return
        self._last_progress = now
        self.progress.inputs_live = sum(1 for feed in self._feeds.values() if feed.live)
        if self.on_progress is not None:
            self.on_progress(
                MixerProgress(self.progress.video_frames, self.progress.audio_frames, self.progress.inputs_live)
            )
