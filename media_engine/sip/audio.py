"""The call's media outside SIP: PCM from the call encoded to AAC, and the far end's decoded video
(if any) encoded to H.264, published over RTMP (`CallPublisher`); and files or live streams
decoded to PCM for the call (`PcmFeeder`).

PCM here is signed 16-bit mono at the SIP agent's conference clock rate, in 20 ms frames.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np

logger = logging.getLogger(__name__)

AAC_RATE = 48000
AAC_BITRATE = 64000
PUBLISH_OPEN_TIMEOUT = 10.0  # seconds for an RTMP target to accept the publish
VIDEO_RATE = 25  # the H.264 encoder's nominal frame rate (pictures keep the far end's timing)
VIDEO_GOP = 50  # a keyframe every 2 s at that rate: HLS segments can cut there
MILLISECONDS = Fraction(1, 1000)
VIDEO_CLOCK_JUMP = 3.0  # seconds between the video's and the audio's time beyond which video is placed anew


class RtmpOutput:
    """One RTMP target (FLV) with its own AAC encoder, and an H.264 encoder when the call has video
    (``video_size``, the far end's picture size: later pictures of another size are scaled to it)."""

    def __init__(self, url: str, clock_rate: int, video_size: tuple[int, int] | None = None) -> None:
        self.url = url
        self.container = av.open(url, "w", format="flv", timeout=PUBLISH_OPEN_TIMEOUT)
        self.stream = self.container.add_stream("aac", rate=AAC_RATE)
        self.stream.layout = "mono"
        self.stream.bit_rate = AAC_BITRATE
        self.video = None
        if video_size is not None:
            self.video = self.container.add_stream("libx264", rate=VIDEO_RATE)
            self.video.width, self.video.height = video_size
            self.video.pix_fmt = "yuv420p"
            self.video.codec_context.time_base = MILLISECONDS
            self.video.codec_context.gop_size = VIDEO_GOP
            self.video.options = {"preset": "ultrafast", "tune": "zerolatency"}
        self.video_origin: float | None = None  # the video clock's time at the audio's 0
        self.last_video_pts = -1
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
            self._mux(self.stream.encode(resampled))

    def write_video(self, picture: av.VideoFrame, seconds: float) -> None:
        """A picture of the far end's video at ``seconds`` of the video's own clock. The first one
        is placed at the audio written so far; so is one whose clock jumped (the far end's video
        came back with a new RTP clock) more than `VIDEO_CLOCK_JUMP` away from the audio."""
        if self.video is None:
            return
        audio_seconds = self.samples / self.clock_rate
        if self.video_origin is None or abs(seconds - self.video_origin - audio_seconds) > VIDEO_CLOCK_JUMP:
            self.video_origin = seconds - audio_seconds
        pts = int((seconds - self.video_origin) * 1000)
        if pts <= self.last_video_pts:
            return  # not after the last one: an encoder needs rising times
        self.last_video_pts = pts
        picture = picture.reformat(width=self.video.width, height=self.video.height, format="yuv420p")
        picture.pts = pts
        picture.time_base = MILLISECONDS
        self._mux(self.video.encode(picture))

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self.sent_bytes += packet.size
            self.container.mux(packet)

    def close(self) -> None:
        try:
            for stream in filter(None, (self.stream, self.video)):
                for packet in stream.encode(None):
                    self.container.mux(packet)
        except (av.FFmpegError, ValueError) as error:
            logger.debug("flushing %s: %s", self.url, error)
        finally:
            self.container.close()


class CallPublisher:
    """A thread that takes PCM frames (`put`, from the SIP media clock, never blocking it) and,
    when the call has video, decoded pictures (`put_video`), and writes them to every RTMP target.
    With ``video`` the call has video: the targets open once the first picture came (its size is
    the video track's) or, when none came within ``video_wait`` seconds, with audio only. When a
    re-INVITE adds or removes the call's video (`set_video`), the targets are closed and opened
    again with the tracks the call now has (players see the stream published anew). A target
    that fails is dropped and reported through ``on_error(url, message)``; the others go on."""

    def __init__(
        self,
        urls: list[str],
        clock_rate: int,
        on_error: Callable[[str, str], None],
        video: bool = False,
        video_wait: float = 5.0,
    ) -> None:
        self.urls = urls
        self.clock_rate = clock_rate
        self.on_error = on_error
        self.video = video
        self.video_wait = video_wait
        # ("audio", pcm), ("video", picture, seconds) or ("tracks", has_video); None ends. 10 s of 20 ms audio frames.
        self.items: queue.Queue[tuple | None] = queue.Queue(maxsize=500)
        self.outputs: list[RtmpOutput] = []
        self.closed_bytes = 0  # sent by targets closed for a change of tracks
        self.thread = threading.Thread(target=self._run, name="call-publisher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def put(self, pcm: bytes) -> None:
        self._put(("audio", pcm))

    def put_video(self, picture: av.VideoFrame, seconds: float) -> None:
        """A picture at ``seconds`` of the video's own clock (RTP time since its first picture)."""
        self._put(("video", picture, seconds))

    def set_video(self, video: bool) -> None:
        """The call has video now (or no longer): the targets are published again with it (without it)."""
        if video != self.video:
            self.video = video
            self.items.put(("tracks", video))  # blocking: a change of tracks is never dropped

    def _put(self, item: tuple) -> None:
        try:
            self.items.put_nowait(item)
        except queue.Full:
            logger.warning("publisher is behind: %s of the call dropped", item[0])

    def stop(self) -> None:
        self.items.put(None)
        self.thread.join(timeout=10)

    @property
    def sent_bytes(self) -> int:
        return self.closed_bytes + sum(output.sent_bytes for output in self.outputs)

    def _run(self) -> None:
        video = self.video
        while True:
            early, video_size = self._wait_for_video() if video else ([], None)
            for url in self.urls:
                try:
                    self.outputs.append(RtmpOutput(url, self.clock_rate, video_size))
                except (av.FFmpegError, OSError) as error:
                    self.on_error(url, f"cannot publish: {error}")
            last = self._publish(early)
            self._close()
            if last is None:
                return
            video = last[1]  # a change of tracks: published again with them

    def _publish(self, early: list) -> tuple | None:
        """Writes ``early``, then what comes, until the end (None) or a change of tracks (its item)."""
        for item in early:
            if item is None or item[0] == "tracks":
                return item
            self._write(item)
        while (item := self.items.get()) is not None and item[0] != "tracks":
            self._write(item)
        return item

    def _wait_for_video(self) -> tuple[list, tuple[int, int] | None]:
        """What came before the first picture (or the end, a change of tracks, or the wait's end), and its size."""
        early: list = []
        deadline = time.monotonic() + self.video_wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.items.get(timeout=left)
            except queue.Empty:
                break
            early.append(item)
            if item is None or item[0] == "tracks":
                break
            if item[0] == "video":
                return early, (item[1].width, item[1].height)
        return early, None

    def _write(self, item: tuple) -> None:
        for output in list(self.outputs):
            try:
                if item[0] == "audio":
                    output.write(item[1])
                else:
                    output.write_video(item[1], item[2])
            except Exception as error:  # noqa: BLE001 - one broken target must not stop the others
                self.outputs.remove(output)
                self.on_error(output.url, f"publish failed: {error}")

    def _close(self) -> None:
        for output in self.outputs:
            output.close()
            self.closed_bytes += output.sent_bytes
        self.outputs = []


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
