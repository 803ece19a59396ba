"""Encoded frames out of aiortc's receivers, for ingest: the engine relays what it receives and
decodes only what it must transcode (in threads of its own), so a WHIP publisher's H.264 costs no
decode at all.

aiortc decodes every received frame in a thread per receiver (`decoder_worker`). `install()`
replaces that worker: for the tracks registered with `receive_encoded` it hands over
`EncodedFrame`s instead of decoded pictures; other tracks are decoded as aiortc does.
"""

from __future__ import annotations

import asyncio
import queue
import time
import weakref
from dataclasses import dataclass

import aiortc.rtcrtpreceiver
from aiortc.mediastreams import MediaStreamTrack

_aiortc_decoder_worker = aiortc.rtcrtpreceiver.decoder_worker
_encoded_queues: weakref.WeakSet[asyncio.Queue] = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One received frame: ``codec`` as in SDP ("H264", "VP8", "opus"), RTP ``timestamp`` counted from
    the track's first frame, ``clock_rate`` of that timestamp, and when it was complete (monotonic)."""

    codec: str
    data: bytes
    timestamp: int
    clock_rate: int
    received_at: float


def receive_encoded(track: MediaStreamTrack) -> None:
    """Make the remote ``track`` (from a peer connection's "track" event) yield `EncodedFrame`s."""
    _encoded_queues.add(track._queue)  # type: ignore[attr-defined]


def _worker(loop: asyncio.AbstractEventLoop, input_q: queue.Queue, output_q: asyncio.Queue, decode_error) -> None:
    if output_q not in _encoded_queues:
        _aiortc_decoder_worker(loop, input_q, output_q, decode_error)
        return
    while True:
        task = input_q.get()
        if task is None:
            asyncio.run_coroutine_threadsafe(output_q.put(None), loop)
            return
        codec, jitter_frame = task
        frame = EncodedFrame(codec.name, jitter_frame.data, jitter_frame.timestamp, codec.clockRate, time.monotonic())
        loop.call_soon_threadsafe(output_q.put_nowait, frame)


def install() -> None:
    """Replace aiortc's decoder worker (idempotent)."""
    aiortc.rtcrtpreceiver.decoder_worker = _worker
