"""The last seconds of every live stream's packets, kept as files, for packaging that starts on demand.

HLS and LL-HLS are packaged only for streams someone plays (`StreamPackager` ``on_demand``). A player's
first playlist should still list a full window (an HLS player holds back three segments before the
live edge), so `PacketHistory` keeps the last ``seconds`` of each stream's packets, whole GOPs from a
video keyframe on, and the packager replays them into a new segmenter. Each GOP is written as one
file when the next keyframe arrives (one ``writev`` per GOP, no copy of the payloads in Python), into
a folder of files that lives outside the Python heap (`store.FileFolder`, on a tmpfs).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from media_engine.hls.store import FileFolder, Files
from media_engine.packets import MediaPacket, TrackKind
from media_engine.registry import LiveStream, StreamKey, StreamRegistry

logger = logging.getLogger(__name__)

# A stream without video keyframes (audio only, or a broken encoder) is cut into pieces this long.
MAX_PIECE_MS = 2000
# kind, flags (1: keyframe), dts, pts, payload length, codec name length
_HEADER = struct.Struct(">BBqqIB")
_KINDS = list(TrackKind)
_KIND_INDEX = {kind: index for index, kind in enumerate(_KINDS)}


@dataclass(frozen=True, slots=True)
class _Piece:
    sequence: int
    name: str
    first_dts: int
    last_dts: int


class _Recorder:
    """The history of one publication: a sink of its packets."""

    def __init__(self, stream: LiveStream, files: Files, seconds: float) -> None:
        self.stream = stream
        self.files = files
        self.keep_ms = int(seconds * 1000)
        self.pieces: list[_Piece] = []
        self._pending: list[MediaPacket] = []
        self._sequence = 0

    def feed(self, packet: MediaPacket) -> None:
        if packet.config:
            return  # (a new reader gets the configuration records from the stream itself)
        pending = self._pending
        if packet.kind is TrackKind.VIDEO and packet.keyframe:
            if pending:
                self._write(pending)
            self._pending = [packet]
            return
        if not pending:
            if self.stream.video_config is not None:
                return  # a video stream's history starts on a keyframe
        elif packet.dts - pending[0].dts >= MAX_PIECE_MS and self.stream.video_config is None:
            self._write(pending)
            self._pending = pending = []
        pending.append(packet)

    def _write(self, packets: list[MediaPacket]) -> None:
        chunks: list[bytes] = []
        for packet in packets:
            codec = packet.codec.encode()
            flags = 1 if packet.keyframe else 0
            chunks.append(
                _HEADER.pack(_KIND_INDEX[packet.kind], flags, packet.dts, packet.pts, len(packet.payload), len(codec))
            )
            chunks.append(codec)
            chunks.append(packet.payload)
        self._sequence += 1
        name = f"gop_{self._sequence}"
        self.files.put_chunks(name, chunks)
        self.pieces.append(_Piece(self._sequence, name, packets[0].dts, packets[-1].dts))
        # Keep what covers ``keep_ms`` without the oldest piece, and no more.
        while len(self.pieces) > 1 and self.pieces[-1].last_dts - self.pieces[1].first_dts >= self.keep_ms:
            self.files.delete(self.pieces.pop(0).name)

    @property
    def sequence(self) -> int:
        return self._sequence

    def replay(self, seconds: float, before: int) -> Replay:
        """The newest pieces (sequence < ``before``) covering ``seconds``, oldest first."""
        chosen: list[_Piece] = []
        wanted_ms = seconds * 1000
        for piece in reversed(self.pieces):
            if piece.sequence >= before:
                continue
            chosen.append(piece)
            if chosen[0].last_dts - piece.first_dts >= wanted_ms:
                break
        return Replay(self.files, chosen[::-1])


class Replay:
    """Pieces of a stream's history, read one at a time (so that replaying a window never holds it
    all in memory): iterate for each piece's packets."""

    def __init__(self, files: Files | None = None, pieces: list[_Piece] | None = None) -> None:
        self.files = files
        self.pieces = pieces or []

    def __bool__(self) -> bool:
        return bool(self.pieces)

    @property
    def first_dts(self) -> int:
        return self.pieces[0].first_dts

    def __iter__(self) -> Iterator[list[MediaPacket]]:
        for piece in self.pieces:
            data = self.files.get(piece.name) if self.files is not None else None
            if data is None:
                return  # (evicted meanwhile: the rest is not contiguous any more)
            try:
                yield _decode(data)
            except (ValueError, struct.error, UnicodeDecodeError):
                logger.exception("a piece of history is unreadable: %s", piece.name)
                return


def _decode(data: bytes) -> list[MediaPacket]:
    packets = []
    view = memoryview(data)
    offset, end = 0, len(data)
    while offset < end:
        kind, flags, dts, pts, length, codec_length = _HEADER.unpack_from(data, offset)
        offset += _HEADER.size
        codec = bytes(view[offset : offset + codec_length]).decode()
        offset += codec_length
        payload = bytes(view[offset : offset + length])
        offset += length
        packets.append(MediaPacket(_KINDS[kind], codec, dts, pts, payload, keyframe=bool(flags & 1)))
    return packets


class PacketHistory:
    """The last ``seconds`` of every live stream of a registry, as files under ``folder``."""

    def __init__(self, registry: StreamRegistry, folder: FileFolder, seconds: float) -> None:
        self.registry = registry
        self.folder = folder
        self.seconds = seconds
        self._recorders: dict[StreamKey, _Recorder] = {}
        self._attached = False

    def attach(self) -> None:
        """Record every stream of the registry, from now on and those already live."""
        if self._attached or self.seconds <= 0:
            return
        self._attached = True
        self.registry.on_started(self._started, mirrors=True)
        self.registry.on_ended(self._ended, mirrors=True)
        for stream in self.registry.streams():
            self._started(stream)

    def mark(self, stream: LiveStream) -> int:
        """Where ``stream``'s history is now: `replay` with this mark gives what came before a reader
        that subscribed at this moment (the stream's current GOP comes with its subscription)."""
        recorder = self._recorders.get(stream.key)
        return recorder.sequence + 1 if recorder is not None and recorder.stream is stream else 0

    def replay(self, stream: LiveStream, seconds: float, mark: int) -> Replay:
        """Up to ``seconds`` (whole GOPs) of ``stream``'s packets before ``mark``, oldest first."""
        recorder = self._recorders.get(stream.key)
        if recorder is None or recorder.stream is not stream or mark <= 0:
            return Replay()
        return recorder.replay(min(seconds, self.seconds), mark)

    def close(self) -> None:
        for recorder in self._recorders.values():
            recorder.stream.remove_sink(recorder.feed)
            recorder.files.release()
        self._recorders.clear()

    def _started(self, stream: LiveStream) -> None:
        old = self._recorders.pop(stream.key, None)
        if old is not None:
            old.stream.remove_sink(old.feed)
            old.files.release()
        recorder = _Recorder(stream, self.folder.files(f"history-{stream.key.name}"), self.seconds)
        self._recorders[stream.key] = recorder
        stream.add_sink(recorder.feed, passive=True)

    def _ended(self, stream: LiveStream) -> None:
        recorder = self._recorders.get(stream.key)
        if recorder is not None and recorder.stream is stream:
            del self._recorders[stream.key]
            stream.remove_sink(recorder.feed)
            recorder.files.release()
