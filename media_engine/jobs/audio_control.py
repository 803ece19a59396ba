"""Changing a pushed stream's audio while it is pushed: mute, and sound injected from a file.

WCS transponders can be muted and can have a WAV file mixed into their audio (``/push/mute``,
``/push/sound_on``) without reconnecting. Copying AAC packets cannot do that, so a push with audio
control decodes the source's audio, applies the current `AudioControl` to every frame and encodes
AAC again (`AudioRewriter`); the video is still copied.

* `AudioControl`: what the audio should be now (muted, the sound file and whether it loops).
* `SoundClip`: a sound file decoded and resampled once to the stream's rate and channels.
* `AudioRewriter`: decode -> mute / mix -> encode, for one audio track of an output container.
* `check_sound_file`: whether a file is audio PyAV can read (for the API's answer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream

from media_engine.jobs.source import POLL_INTERVAL

__all__ = ["AudioControl", "AudioRewriter", "SoundClip", "check_sound_file"]

logger = logging.getLogger(__name__)

MAX_SOUND_SECONDS = 600  # a longer file is cut: the clip is held in memory
DEFAULT_AAC_BITRATE = 128_000


@dataclass(frozen=True)
class AudioControl:
    muted: bool = False
    sound_file: str | None = None  # a path on this machine; None: no injected sound
    sound_loop: bool = False
    sound_serial: int = 0  # a new value starts the sound again from its beginning


def check_sound_file(path: str) -> None:
    """Raise ValueError (a message for an API client) unless ``path`` is audio PyAV can decode."""
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise ValueError("the file has no audio")
            next(container.decode(audio=0))
    except (av.FFmpegError, OSError, StopIteration) as error:
        raise ValueError(f"the file is not readable audio ({error or 'no audio frames'})") from None


class SoundClip:
    """A sound file as float samples at ``rate`` with the channels of ``layout``; `take` hands out
    the next samples (looping if asked, silence once it is over)."""

    def __init__(self, path: str, rate: int, layout: str, loop: bool) -> None:
        self.path = path
        self.loop = loop
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks: list[np.ndarray] = []
        total = 0
        with av.open(path) as container:
            for frame in container.decode(audio=0):
                for converted in resampler.resample(frame):
                    chunks.append(converted.to_ndarray())
                    total += converted.samples
                if total >= MAX_SOUND_SECONDS * rate:
                    break
            for converted in resampler.resample(None):
                chunks.append(converted.to_ndarray())
        channels = len(av.AudioLayout(layout).channels)
        self.samples = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
        self.position = 0

    @property
    def finished(self) -> bool:
        return not self.loop and self.position >= self.samples.shape[1]

    def take(self, count: int) -> np.ndarray:
        length = self.samples.shape[1]
        out = np.zeros((self.samples.shape[0], count), np.float32)
        if length == 0:
            return out
        filled = 0
        while filled < count:
            if self.position >= length:
                if not self.loop:
                    break
                self.position = 0
            step = min(count - filled, length - self.position)
            out[:, filled : filled + step] = self.samples[:, self.position : self.position + step]
            self.position += step
            filled += step
        return out


class AudioRewriter:
    """Re-encodes the audio of ``template`` (an input stream) into a new AAC stream of ``output``,
    muting it or mixing a `SoundClip` into it as ``control()`` says (asked at most every
    POLL_INTERVAL seconds; it may query a database)."""

    def __init__(
        self,
        template: Stream,
        output: OutputContainer,
        control: Callable[[], AudioControl],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.decoder = template.codec_context
        rate = template.codec_context.sample_rate or 44100
        self.layout = template.codec_context.layout.name or "stereo"
        self.stream = output.add_stream("aac", rate=rate)
        encoder = self.stream.codec_context
        encoder.layout = self.layout
        encoder.format = "fltp"
        encoder.bit_rate = template.codec_context.bit_rate or DEFAULT_AAC_BITRATE
        # Open now, in this thread: the muxer's header (written by another thread) needs the
        # encoder's AudioSpecificConfig, and two threads must not race to open it.
        encoder.open()
        self.rate = rate
        self.control = control
        self.clock = clock
        self.current = AudioControl()
        self.clip: SoundClip | None = None
        self._last_poll = float("-inf")

    def process(self, packet: Packet) -> list[Packet]:
        """The encoded packets that replace ``packet`` (often none or one: AAC encodes with delay)."""
        self._poll()
        out: list[Packet] = []
        try:
            frames = self.decoder.decode(packet)
        except av.FFmpegError as error:
            logger.debug("audio packet not decodable: %s", error)
            return out
        for frame in frames:
            out.extend(self.stream.encode(self._apply(frame)))
        return out

    def flush(self) -> list[Packet]:
        return list(self.stream.encode(None))

    def _poll(self) -> None:
        now = self.clock()
        if now - self._last_poll < POLL_INTERVAL:
            return
        self._last_poll = now
        wanted = self.control()
        if (wanted.sound_file, wanted.sound_serial) != (self.current.sound_file, self.current.sound_serial):
            self.clip = None
            if wanted.sound_file:
                try:
                    self.clip = SoundClip(wanted.sound_file, self.rate, self.layout, wanted.sound_loop)
                except (av.FFmpegError, OSError) as error:
                    logger.warning("cannot inject %s: %s", wanted.sound_file, error)
        if self.clip is not None:
            self.clip.loop = wanted.sound_loop
        self.current = wanted

    def _apply(self, frame: AudioFrame) -> AudioFrame:
        if not self.current.muted and self.clip is None:
            return frame
        samples = frame.to_ndarray().astype(np.float32, copy=False)
        if frame.format.name != "fltp" or samples.ndim != 2:
            return frame  # the AAC decoder gives planar float; anything else passes unchanged
        mixed = np.zeros_like(samples) if self.current.muted else samples.copy()
        if self.clip is not None:
            sound = self.clip.take(frame.samples)
            mixed[: sound.shape[0]] += sound[: mixed.shape[0]]
            if self.clip.finished:
                self.clip = None
        np.clip(mixed, -1.0, 1.0, out=mixed)
        for index, plane in enumerate(frame.planes):
            data = np.ascontiguousarray(mixed[index]).tobytes()
            plane.update(data + bytes(plane.buffer_size - len(data)))  # planes carry padding
        return frame
