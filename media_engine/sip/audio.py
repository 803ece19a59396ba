"""The call's audio outside SIP: PCM from the call encoded to AAC and published over RTMP
(`AacPublisher`), and files or live streams decoded to PCM for the call (`PcmFeeder`).

PCM here is signed 16-bit mono at the SIP agent's conference clock rate, in 20 ms frames.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np

logger = logging.getLogger(__name__)

AAC_RATE = 48000
AAC_BITRATE = 64000
PUBLISH_OPEN_TIMEOUT = 10.0  # seconds for an RTMP target to accept the publish


class RtmpAudioOutput:
    """One RTMP target (FLV) with its own AAC encoder."""

    def __init__(self, url: str, clock_rate: int) -> None:
        self.url = url
        self.container = av.open(url, "w", format="flv", timeout=PUBLISH_OPEN_TIMEOUT)
        self.stream = self.container.add_stream("aac", rate=AAC_RATE)
        self.stream.layout = "mono"
        self.stream.bit_rate = AAC_BITRATE
        self.resampler = av.AudioResampler(format="fltp", layout="mono", rate=AAC_RATE)
        self.clock_rate = clock_rate
        self.samples = 0
        self.sent_bytes = 0

    def write(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype=np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self.clock_rate
        frame.pts = self.samples
        frame.time_base = Fraction(1, self.clock_rate)
        self.samples += samples.shape[1]
        for resampled in self.resampler.resample(frame):
            for packet in self.stream.encode(resampled):
                self.sent_bytes += packet.size
                self.container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        except (av.FFmpegError, ValueError) as error:
            logger.debug("flushing %s: %s", self.url, error)
        finally:
            self.container.close()


class AacPublisher:
    """A thread that takes PCM frames (`put`, from the SIP media clock, never blocking it) and
    writes them to every RTMP target. A target that fails is dropped and reported through
    ``on_error(url, message)``; the others go on."""

    def __init__(self, urls: list[str], clock_rate: int, on_error: Callable[[str, str], None]) -> None:
        self.urls = urls
        self.clock_rate = clock_rate
        self.on_error = on_error
        self.frames: queue.Queue[bytes | None] = queue.Queue(maxsize=500)  # 10 s of 20 ms frames
        self.outputs: list[RtmpAudioOutput] = []
        self.thread = threading.Thread(target=self._run, name="aac-publisher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def put(self, pcm: bytes) -> None:
        try:
            self.frames.put_nowait(pcm)
        except queue.Full:
            logger.warning("publisher is behind: a frame of call audio dropped")

    def stop(self) -> None:
        self.frames.put(None)
        self.thread.join(timeout=10)

    @property
    def sent_bytes(self) -> int:
        return sum(output.sent_bytes for output in self.outputs)

    def _run(self) -> None:
        for url in self.urls:
            try:
                self.outputs.append(RtmpAudioOutput(url, self.clock_rate))
            except (av.FFmpegError, OSError) as error:
                self.on_error(url, f"cannot publish: {error}")
        while (pcm := self.frames.get()) is not None:
            for output in list(self.outputs):
                try:
                    output.write(pcm)
                except Exception as error:  # noqa: BLE001 - one broken target must not stop the others
                    self.outputs.remove(output)
                    self.on_error(output.url, f"publish failed: {error}")
        for output in self.outputs:
            output.close()


class PcmFeeder:
    """A thread that decodes the audio of ``source`` (a file path or a URL such as the engine's
    RTMP play URL) to 20 ms PCM frames; `next_frame` hands them out at the pace the SIP media
    clock asks for them (the bounded queue holds the decoder back). ``on_end(error)`` is called
    once the source is exhausted (error None) or failed."""

    def __init__(self, source: str, clock_rate: int, on_end: Callable[[str | None], None], loop: bool = False) -> None:
        self.source = source
        self.clock_rate = clock_rate
        self.frame_bytes = clock_rate // 50 * 2
        self.on_end = on_end
        self.loop = loop
        self.frames: queue.Queue[bytes] = queue.Queue(maxsize=10)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pcm-feeder", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def next_frame(self) -> bytes | None:
        """The next 20 ms of PCM, or None when none is ready (the caller sends silence)."""
        try:
            return self.frames.get_nowait()
        except queue.Empty:
            return None

    def _put(self, pcm: bytes) -> bool:
        while not self.stopped.is_set():
            try:
                self.frames.put(pcm, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        error = None
        try:
            while True:
                self._play_once()
                if not self.loop or self.stopped.is_set():
                    break
        except (av.FFmpegError, OSError) as failure:
            error = str(failure)
        # Let the last frames drain before saying the sound is over.
        while not self.stopped.is_set() and not self.frames.empty():
            self.stopped.wait(0.02)
        self.on_end(error)

    def _play_once(self) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=self.clock_rate)
        pending = b""
        with av.open(self.source, "r", timeout=10.0) as container:
            if not container.streams.audio:
                raise OSError(f"{self.source} has no audio")
            for frame in container.decode(container.streams.audio[0]):
                for resampled in resampler.resample(frame):
                    pending += resampled.to_ndarray().tobytes()
                    while len(pending) >= self.frame_bytes:
                        if not self._put(pending[: self.frame_bytes]):
                            return
                        pending = pending[self.frame_bytes :]
                if self.stopped.is_set():
                    return
            for resampled in resampler.resample(None):
                pending += resampled.to_ndarray().tobytes()
        if pending:
            self._put(pending.ljust(self.frame_bytes, b"\0"))
