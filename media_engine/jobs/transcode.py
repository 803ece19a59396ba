"""Transcoding one live stream into renditions and thumbnails, for Celery workers (PyAV).

A `Transcoder` plays one source (the engine's RTMP URL, like any client, through a `SourceReader`),
decodes it once, and feeds:

* its `Rendition`s: each is one output stream published back into the engine over RTMP (as an
  encoder would), with a video track (a `VideoEncoding`: libx264 at a size, bitrate and frame
  rate, or ``BYPASS``: the source's packets) and/or an audio track (`AudioEncoding`: AAC, or
  ``BYPASS``). A WCS-style transcoder is a `Transcoder` with one rendition.
* its `ImageOutput`s: the latest picture as JPEG/PNG at a size and frame rate, written to a file
  (thumb.jpg), replaced while live and removed at the end.

Renditions start together on the source's first keyframe, with timestamps from 0. Without a
``keyframe_interval`` an encoded rendition puts its keyframes where the source has them, so the
renditions of one source (and the source itself) switch at the same instants, as ABR players want.

The decode, scaling and encodes run in the calling thread (libx264 and the decoder single threaded
unless ``threads`` says otherwise) so the job's CPU time is that thread's, plus the reader's and
the writers' threads, all measured from /proc: `TranscodeProgress` reports it with the frame counts.

``run`` blocks until ``should_stop()`` or the source ends; it raises `SourceUnavailable` if the
source cannot be played and `TargetFailed` if the engine refuses or drops a rendition.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.frame import PictureType

from media_engine.jobs.events import MediaEvent, StateCallback
from media_engine.jobs.push import TargetFailed, TargetWriter
from media_engine.jobs.source import (
    POLL_INTERVAL,
    SourceEnd,
    SourceReader,
    SourceUnavailable,
    StopPoller,
    redact_url,
)
from media_engine.jobs.thumbnail import ImageEncoder, ThumbnailStore, fit_size

__all__ = [
    "BYPASS",
    "AudioEncoding",
    "ImageOutput",
    "Rendition",
    "SourceUnavailable",
    "TargetFailed",
    "TranscodeProgress",
    "Transcoder",
    "VideoEncoding",
]

logger = logging.getLogger(__name__)

BYPASS: Literal["bypass"] = "bypass"
MS = Fraction(1, 1000)  # FLV/RTMP time base, used for every output
VIDEO_CODECS = {"h264": "libx264"}  # what RTMP (FLV) carries and the engine packages
AUDIO_CODECS = {"aac": "aac"}
PROGRESS_INTERVAL = 1.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class VideoEncoding:
    """One video encode (OME's encodes.videos item). Sizes of None or <= 0 follow the source (or
    keep its proportions when one side is given); ``framerate`` None keeps the source's frames;
    ``keyframe_interval`` (frames) None puts keyframes where the source has them."""

    codec: str = "h264"
    bitrate: int = 1_000_000
    width: int | None = None
    height: int | None = None
    framerate: float | None = None
    preset: str = "veryfast"
    keyframe_interval: int | None = None
    bframes: int = 0
    profile: str | None = None
    threads: int = 1

    def __post_init__(self) -> None:
        if self.codec not in VIDEO_CODECS:
            raise ValueError(f"video codec {self.codec!r} cannot be published over RTMP (use h264)")
        if self.bitrate <= 0:
            raise ValueError("video bitrate must be positive")

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        wanted_width = self.width if self.width and self.width > 0 else None
        wanted_height = self.height if self.height and self.height > 0 else None
        return fit_size(width, height, wanted_width, wanted_height)


@dataclass(frozen=True)
class AudioEncoding:
    """One audio encode (OME's encodes.audios item); None keeps the source's rate / channels."""

    codec: str = "aac"
    bitrate: int = 128_000
    samplerate: int | None = None
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.codec not in AUDIO_CODECS:
            raise ValueError(f"audio codec {self.codec!r} cannot be published over RTMP (use aac)")
        if self.bitrate <= 0:
            raise ValueError("audio bitrate must be positive")


@dataclass(frozen=True)
class Rendition:
    """One output stream: ``target`` is its RTMP publish URL; a track is an encoding, BYPASS or None (absent)."""

    name: str
    target: str
    video: VideoEncoding | Literal["bypass"] | None = None
    audio: AudioEncoding | Literal["bypass"] | None = None
    # Applied to each encoded picture after scaling (a WCS watermark: media_engine.jobs.watermark).
    overlay: Callable[[av.VideoFrame], av.VideoFrame] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.video is None and self.audio is None:
            raise ValueError(f"rendition {self.name} has neither video nor audio")


@dataclass(frozen=True)
class ImageOutput:
    """Pictures of the stream (OME's encodes.images item) written to ``path`` ``framerate`` times a second."""

    codec: str
    path: Path
    width: int | None = None
    height: int | None = None
    framerate: float = 1.0


@dataclass
class TranscodeProgress:
    frames_decoded: int = 0
    frames_encoded: dict[str, int] = field(default_factory=dict)  # rendition name -> video frames
    images_written: int = 0
    media_time_ms: int = 0  # of the last decoded picture, from the start
    cpu_seconds: float = 0.0  # every thread of this transcode, since it started
    cpu_percent: float = 0.0  # of one core, over the last interval
    renditions_live: int = 0  # connected to the engine


def thread_cpu_seconds(native_id: int) -> float | None:
    """User + system CPU seconds of one thread of this process (None once it is gone)."""
    try:
        with open(f"/proc/self/task/{native_id}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


class CpuMeter:
    """CPU time of the threads of one job: the job thread and helper threads as they come and go."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._own_start = time.thread_time()
        self._helpers: dict[int, float] = {}
        self._last = (clock(), 0.0)

    def watch(self, thread: threading.Thread) -> None:
        if thread.native_id is not None:
            self._helpers.setdefault(thread.native_id, 0.0)

    def total(self) -> float:
        for native_id in self._helpers:
            seconds = thread_cpu_seconds(native_id)
            if seconds is not None:
                self._helpers[native_id] = seconds  # a finished thread keeps its last reading
        return time.thread_time() - self._own_start + sum(self._helpers.values())

    def sample(self) -> tuple[float, float]:
        """(total CPU seconds, percent of one core since the last sample)."""
        now, total = self.clock(), self.total()
        then, before = self._last
        self._last = (now, total)
        percent = 100.0 * (total - before) / (now - then) if now > then else 0.0
        return total, round(max(percent, 0.0), 1)


class _VideoOutput:
    """One rendition's video encoder: scaling, frame-rate reduction, keyframe placement."""

    def __init__(
        self,
        stream: Stream,
        encoding: VideoEncoding,
        source_size: tuple[int, int],
        overlay: Callable[[av.VideoFrame], av.VideoFrame] | None = None,
    ) -> None:
        self.stream = stream
        self.encoding = encoding
        self.overlay = overlay
        self.width, self.height = encoding.size_for(*source_size)
        rate = Fraction(encoding.framerate).limit_denominator(1001) if encoding.framerate else Fraction(30)
        context = stream.codec_context
        context.width, context.height = self.width, self.height
        context.pix_fmt = "yuv420p"
        context.time_base = MS
        context.framerate = rate
        context.bit_rate = encoding.bitrate
        context.thread_count = max(0, encoding.threads)
        # Keyframes come where we force them (source keyframes or the interval), not where x264 likes.
        context.gop_size = 100_000 if encoding.keyframe_interval is None else encoding.keyframe_interval
        options = {
            "preset": encoding.preset,
            "forced-idr": "1",
            "bf": str(encoding.bframes),
            "maxrate": str(encoding.bitrate),
            "bufsize": str(encoding.bitrate * 2),
            "x264-params": "scenecut=0",
        }
        if encoding.profile:
            options["profile"] = encoding.profile
        context.options = options
        context.open()  # now, in this thread: the writer thread writes the header with its extradata
        self.frame_interval_ms = 1000 / float(encoding.framerate) if encoding.framerate else None
        self.key_interval_ms = (
            encoding.keyframe_interval * 1000 / float(rate) if encoding.keyframe_interval is not None else None
        )
        self.reformatter = av.video.reformatter.VideoReformatter()
        self._next_frame_ms: float | None = None
        self._next_key_ms = 0.0
        self.frames = 0

    def wants(self, time_ms: int) -> bool:
        """Frame-rate reduction: keep the picture due at ``time_ms``."""
        if self.frame_interval_ms is None:
            return True
        if self._next_frame_ms is not None and time_ms + self.frame_interval_ms / 2 < self._next_frame_ms:
            return False
        following = (self._next_frame_ms or time_ms) + self.frame_interval_ms
        self._next_frame_ms = following if following > time_ms else time_ms + self.frame_interval_ms
        return True

    def encode(self, frame: av.VideoFrame, time_ms: int, source_keyframe: bool) -> list[Packet]:
        if not self.wants(time_ms):
            return []
        picture = self.reformatter.reformat(frame, self.width, self.height, "yuv420p")
        if self.overlay is not None:
            picture = self.overlay(picture)
        if self.key_interval_ms is None:
            keyframe = source_keyframe or self.frames == 0
        else:
            keyframe = time_ms >= self._next_key_ms
            if keyframe:
                while self._next_key_ms <= time_ms:
                    self._next_key_ms += self.key_interval_ms
        picture.pict_type = PictureType.I if keyframe else PictureType.NONE
        picture.pts = time_ms
        picture.time_base = MS
        self.frames += 1
        return self.stream.encode(picture)

    def flush(self) -> list[Packet]:
        return self.stream.encode(None)


class _AudioOutput:
    def __init__(self, stream: Stream, encoding: AudioEncoding, source: av.AudioCodecContext) -> None:
        self.stream = stream
        context = stream.codec_context
        rate = encoding.samplerate or source.sample_rate or 48000
        channels = encoding.channels or source.channels or 2
        context.sample_rate = rate
        context.layout = "mono" if channels == 1 else "stereo"
        context.format = "fltp"
        context.time_base = Fraction(1, rate)
        context.bit_rate = encoding.bitrate
        context.open()

    def encode(self, frame: av.AudioFrame | None) -> list[Packet]:
        return self.stream.encode(frame)


@dataclass
class _RenditionOutput:
    rendition: Rendition
    writer: TargetWriter
    video: _VideoOutput | Stream | None  # encoder, or the output stream of copied packets
    audio: _AudioOutput | Stream | None
    last_dts: dict[str, int] = field(default_factory=dict)


class Transcoder:
    """Reads ``source`` until it ends or ``should_stop()``; see the module docstring.

    ``on_state(state, error)`` gets "started" once every rendition is connected to the engine and
    "stopped" at the end; ``on_progress`` a `TranscodeProgress` about once a second.
    """

    def __init__(
        self,
        source: str,
        renditions: list[Rendition],
        images: list[ImageOutput] | None = None,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_state: StateCallback | None = None,
        on_progress: Callable[[TranscodeProgress], None] | None = None,
        open_timeout: float = 10.0,
        stall_timeout: float = 10.0,
        write_timeout: float = 10.0,
        store: ThumbnailStore | None = None,
    ) -> None:
        if not renditions and not images:
            raise ValueError("a transcode needs at least one rendition or image output")
        self.source = source
        self.renditions = list(renditions)
        self.images = list(images or [])
        self.should_stop = StopPoller(should_stop)
        self.on_state = on_state
        self.on_progress = on_progress
        self.open_timeout = open_timeout
        self.stall_timeout = stall_timeout
        self.write_timeout = write_timeout
        self.store = store or ThumbnailStore("/")
        self.progress = TranscodeProgress(frames_encoded={rendition.name: 0 for rendition in self.renditions})
        self._outputs: list[_RenditionOutput] = []
        self._image_encoders = [ImageEncoder(image.codec, image.width, image.height) for image in self.images]
        self._image_due = [0.0 for _ in self.images]
        self._origin_ms: int | None = None
        self._started = False
        self._cpu: CpuMeter | None = None
        self._last_progress = 0.0

    # -- driving ----------------------------------------------------------------------------------

    def run(self) -> None:
        self._cpu = CpuMeter()
        reader = SourceReader(self.source, open_timeout=self.open_timeout, stall_timeout=self.stall_timeout)
        reader.start()
        self._cpu.watch(reader._thread)
        try:
            if not reader.wait_open(self.should_stop):
                return
            self._transcode(reader)
        finally:
            reader.close()
            self._finish()
            self._remove_images()
            self._report(force=True)
            if self.on_state is not None:
                self.on_state(MediaEvent.STOPPED, None)

    def _transcode(self, reader: SourceReader) -> None:
        video_in = next((s for s in reader.streams if s.type == "video"), None)
        audio_in = next((s for s in reader.streams if s.type == "audio"), None)
        video_decoder = self._decoder(video_in) if video_in is not None and self._decodes_video() else None
        if video_decoder is not None and not any(isinstance(r.video, VideoEncoding) for r in self.renditions):
            video_decoder.skip_frame = "NONKEY"  # pictures for thumbnails only: keyframes are enough
        audio_decoder = self._decoder(audio_in) if audio_in is not None and self._decodes_audio() else None
        time_bases = {stream.index: stream.time_base for stream in reader.streams}
        kinds = {stream.index: stream.type for stream in (video_in, audio_in) if stream is not None}
        while not self.should_stop():
            for output in self._outputs:
                output.writer.check()
            if not self._started and self._outputs and all(o.writer.connected_at for o in self._outputs):
                self._started = True
                if self.on_state is not None:
                    self.on_state(MediaEvent.STARTED, None)
            item = reader.get(POLL_INTERVAL)
            self._report()
            if item is None:
                continue
            if isinstance(item, SourceEnd):
                if item.error is not None:
                    logger.info("transcode of %s: %s", redact_url(self.source), item.error)
                return
            packet: Packet = item
            kind = kinds.get(packet.stream_index)
            if kind is None:
                continue
            time_base = time_bases[packet.stream_index]
            if self._origin_ms is None:
                if video_in is not None and not (kind == "video" and packet.is_keyframe):
                    continue  # every rendition starts on a keyframe
                self._origin_ms = round(packet.dts * time_base * 1000)
                self._open_outputs(video_in, audio_in, reader)
            if kind == "video":
                self._copy(packet, "video", time_base)
                if video_decoder is not None:
                    for frame in video_decoder.decode(packet):
                        self._video_frame(frame, time_base)
            else:
                self._copy(packet, "audio", time_base)
                if audio_decoder is not None:
                    for frame in audio_decoder.decode(packet):
                        self._audio_frame(frame, time_base)

    def _decodes_video(self) -> bool:
        return bool(self.images) or any(isinstance(r.video, VideoEncoding) for r in self.renditions)

    def _decodes_audio(self) -> bool:
        return any(isinstance(r.audio, AudioEncoding) for r in self.renditions)

    @staticmethod
    def _decoder(stream: Stream) -> av.CodecContext:
        decoder = av.CodecContext.create(stream.codec_context.name, "r")
        decoder.extradata = stream.codec_context.extradata
        decoder.thread_count = 1  # in this thread: its CPU time is the job's
        return decoder

    # -- outputs ----------------------------------------------------------------------------------

    def _open_outputs(self, video_in: Stream | None, audio_in: Stream | None, reader: SourceReader) -> None:
        source_size = (video_in.codec_context.width, video_in.codec_context.height) if video_in else (0, 0)
        for rendition in self.renditions:
            container: OutputContainer = av.open(rendition.target, "w", format="flv")
            video: _VideoOutput | Stream | None = None
            audio: _AudioOutput | Stream | None = None
            if video_in is not None and rendition.video is BYPASS:
                video = container.add_stream_from_template(video_in)
            elif video_in is not None and isinstance(rendition.video, VideoEncoding):
                codec = VIDEO_CODECS[rendition.video.codec]
                video = _VideoOutput(container.add_stream(codec), rendition.video, source_size, rendition.overlay)
            if audio_in is not None and rendition.audio is BYPASS:
                audio = container.add_stream_from_template(audio_in)
            elif audio_in is not None and isinstance(rendition.audio, AudioEncoding):
                codec = AUDIO_CODECS[rendition.audio.codec]
                audio = _AudioOutput(container.add_stream(codec), rendition.audio, audio_in.codec_context)
            if video is None and audio is None:
                container.close()
                raise SourceUnavailable(
                    f"{redact_url(self.source)} has none of the tracks rendition {rendition.name} needs"
                )
            writer = TargetWriter(container, rendition.target, self.open_timeout, self.write_timeout).start()
            self._cpu.watch(writer._thread)
            self._outputs.append(_RenditionOutput(rendition, writer, video, audio))

    def _copy(self, packet: Packet, kind: str, time_base: Fraction) -> None:
        """The source's packet into every rendition that bypasses this kind of track."""
        targets = [o for o in self._outputs if isinstance(o.video if kind == "video" else o.audio, Stream)]
        if not targets:
            return
        shift = round(self._origin_ms / 1000 / time_base)
        for index, output in enumerate(targets):
            copy = packet if index == len(targets) - 1 else _copied(packet)
            copy.dts = packet.dts - shift
            copy.pts = (packet.pts if packet.pts is not None else packet.dts) - shift
            copy.time_base = time_base
            if copy.dts < 0:
                continue  # the source's audio from before the first keyframe
            copy.stream = output.video if kind == "video" else output.audio
            self._send(output, copy, kind)

    def _video_frame(self, frame: av.VideoFrame, time_base: Fraction) -> None:
        if frame.pts is None:
            return
        time_ms = round(frame.pts * time_base * 1000) - self._origin_ms
        if time_ms < 0:
            return
        self.progress.frames_decoded += 1
        self.progress.media_time_ms = time_ms
        keyframe = frame.key_frame
        for output in self._outputs:
            if isinstance(output.video, _VideoOutput):
                for encoded in output.video.encode(frame, time_ms, keyframe):
                    self._send(output, encoded, "video")
                self.progress.frames_encoded[output.rendition.name] = output.video.frames
        self._write_images(frame, time_ms)

    def _audio_frame(self, frame: av.AudioFrame, time_base: Fraction) -> None:
        if frame.pts is None:
            return
        time_ms = round(frame.pts * time_base * 1000) - self._origin_ms
        if time_ms < 0:
            return
        frame.pts = time_ms
        frame.time_base = MS
        for output in self._outputs:
            if isinstance(output.audio, _AudioOutput):
                for encoded in output.audio.encode(frame):
                    self._send(output, encoded, "audio")

    def _send(self, output: _RenditionOutput, packet: Packet, kind: str) -> None:
        if packet.dts is None:
            return
        if packet.dts <= output.last_dts.get(kind, -(2**62)):
            return  # the muxer refuses non-increasing timestamps
        output.last_dts[kind] = packet.dts
        while not output.writer.put(packet, POLL_INTERVAL):
            output.writer.check()
            if self.should_stop():
                return

    def _finish(self) -> None:
        """Flush the encoders and close every output (the renditions end in the engine)."""
        outputs, self._outputs = self._outputs, []
        for output in outputs:
            if output.writer.error is None and not self.should_stop.stopping:
                try:
                    for encoder, kind in ((output.video, "video"), (output.audio, "audio")):
                        if isinstance(encoder, _VideoOutput | _AudioOutput):
                            for packet in encoder.stream.encode(None):
                                self._send(output, packet, kind)
                except (av.FFmpegError, ValueError) as error:
                    logger.debug("flushing %s: %s", output.rendition.name, error)
            if output.writer.error is None:
                output.writer.finish(wait=2.0)
            output.writer.abandon()

    # -- images -----------------------------------------------------------------------------------

    def _write_images(self, frame: av.VideoFrame, time_ms: int) -> None:
        for index, (image, encoder) in enumerate(zip(self.images, self._image_encoders, strict=True)):
            if time_ms < self._image_due[index]:
                continue
            interval = 1000 / image.framerate if image.framerate > 0 else 1000
            self._image_due[index] = max(self._image_due[index] + interval, time_ms + interval / 2)
            try:
                self.store.write(image.path, encoder.encode(frame))
                self.progress.images_written += 1
            except (OSError, av.FFmpegError, ValueError) as error:
                logger.warning("thumbnail %s not written: %s", image.path, error)

    def _remove_images(self) -> None:
        for image in self.images:
            try:
                image.path.unlink(missing_ok=True)
            except OSError as error:
                logger.debug("removing %s: %s", image.path, error)

    # -- progress ---------------------------------------------------------------------------------

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        if self._cpu is not None:
            self.progress.cpu_seconds, self.progress.cpu_percent = self._cpu.sample()
        self.progress.renditions_live = sum(1 for o in self._outputs if o.writer.connected_at and not o.writer.error)
        if self.on_progress is not None:
            self.on_progress(
                TranscodeProgress(
                    frames_decoded=self.progress.frames_decoded,
                    frames_encoded=dict(self.progress.frames_encoded),
                    images_written=self.progress.images_written,
                    media_time_ms=self.progress.media_time_ms,
                    cpu_seconds=round(self.progress.cpu_seconds, 3),
                    cpu_percent=self.progress.cpu_percent,
                    renditions_live=self.progress.renditions_live,
                )
            )


def _copied(packet: Packet) -> Packet:
    copy = Packet(bytes(packet))
    copy.is_keyframe = packet.is_keyframe
    return copy
