"""Snapshots: the current picture of a live stream as a JPEG, decoded from its first keyframe.

`snapshot_jpeg` plays the stream (the engine's RTMP URL, like any client; the engine starts a
player on its latest keyframe), decodes the first video frame with PyAV and encodes it with
FFmpeg's MJPEG encoder at the stream's own size.
"""

from __future__ import annotations

import time
from fractions import Fraction

import av

from media_engine.jobs.source import SourceEnd, SourceReader, SourceUnavailable, redact_url

JPEG_QUALITY = 3  # FFmpeg's qscale for MJPEG: 2 (best) .. 31


class SnapshotFailed(Exception):
    """The stream gave no decodable picture in time."""


def snapshot_jpeg(url: str, timeout: float = 5.0) -> bytes:
    """A JPEG of the first picture decoded from ``url``. Raises SourceUnavailable if it cannot be
    played, SnapshotFailed if no picture came within ``timeout`` seconds."""
    reader = SourceReader(url, open_timeout=timeout, stall_timeout=timeout, kinds=["video"]).start()
    deadline = time.monotonic() + timeout
    try:
        if not reader.wait_open(lambda: time.monotonic() > deadline):
            raise SnapshotFailed(f"{redact_url(url)}: not opened within {timeout:g} s")
        decoder = av.CodecContext.create(reader.streams[0].codec_context.name, "r")
        decoder.extradata = reader.streams[0].codec_context.extradata
        while time.monotonic() < deadline:
            item = reader.get()
            if item is None:
                continue
            if isinstance(item, SourceEnd):
                raise SnapshotFailed(f"{redact_url(url)} ended before a picture: {item.error or 'end of stream'}")
            for frame in decoder.decode(item):
                return encode_jpeg(frame)
        raise SnapshotFailed(f"{redact_url(url)}: no picture within {timeout:g} s")
    finally:
        reader.close()


def encode_jpeg(frame: av.VideoFrame) -> bytes:
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = frame.width, frame.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)  # one picture: any time base does
    encoder.options = {"qscale": str(JPEG_QUALITY)}
    encoder.flags |= 0x0002  # AV_CODEC_FLAG_QSCALE: use the fixed quality above
    picture = frame.reformat(format="yuvj420p")
    packets = encoder.encode(picture) + encoder.encode(None)
    if not packets:
        raise SnapshotFailed("the JPEG encoder produced nothing")
    return bytes(packets[0])


__all__ = ["SnapshotFailed", "SourceUnavailable", "encode_jpeg", "snapshot_jpeg"]
