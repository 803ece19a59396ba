"""Fragmented MP4 (CMAF) writing for H.264 + AAC, as LL-HLS serves it; plus ID3 timed metadata in ``emsg``.

This module owns the ISO BMFF byte layout (ISO/IEC 14496-12, 14496-14, 14496-15) and nothing else:

- `init_segment(tracks)`: ``ftyp`` + ``moov`` (``mvhd``, one ``trak`` per track with an empty sample
  table and an ``avc1``/``avcC`` or ``mp4a``/``esds`` sample entry, ``mvex``/``trex``).
- `media_fragment(sequence_number, fragments)`: one ``moof`` (``mfhd``, one ``traf`` per track with
  ``tfhd`` (default-base-is-moof), ``tfdt`` (64-bit baseMediaDecodeTime) and ``trun`` (version 1:
  per-sample duration, size, flags and signed composition offset)) followed by one ``mdat``.
- `emsg_box(...)`: a version 1 DASH event message box, and `id3_tag`/`id3_text_frame`/
  `id3_txxx_frame`/`id3_priv_frame`: an ID3v2.4 tag to carry in it (scheme `ID3_EMSG_SCHEME`).

Samples are given already in their track's timescale (`VideoTrack`: 90 kHz; `AudioTrack`: the
sample rate), so durations are exact integers: the caller owns the timeline.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from media_engine.codecs.aac import parse_audio_specific_config
from media_engine.codecs.h264 import parse_avc_config

VIDEO_TIMESCALE = 90_000
MOVIE_TIMESCALE = 1000
AAC_FRAME_SAMPLES = 1024  # samples per raw AAC frame (AAC-LC, and the core of HE-AAC)

# sample_flags (ISO 14496-12 8.8.3.1): sample_depends_on=2 (an I/sync sample), or
# sample_depends_on=1 with sample_is_non_sync_sample set.
SYNC_SAMPLE_FLAGS = 0x0200_0000
NON_SYNC_SAMPLE_FLAGS = 0x0101_0000

TFHD_DEFAULT_BASE_IS_MOOF = 0x02_0000
TRUN_DATA_OFFSET = 0x000001
TRUN_SAMPLE_DURATION = 0x000100
TRUN_SAMPLE_SIZE = 0x000200
TRUN_SAMPLE_FLAGS = 0x000400
TRUN_SAMPLE_COMPOSITION_OFFSET = 0x000800

ID3_EMSG_SCHEME = "https://aomedia.org/emsg/ID3"
UNKNOWN_EVENT_DURATION = 0xFFFF_FFFF

_UNITY_MATRIX = struct.pack(">9i", 0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000)
_LANGUAGE_UND = ((ord("u") - 0x60) << 10) | ((ord("n") - 0x60) << 5) | (ord("d") - 0x60)


# --- boxes ---------------------------------------------------------------------------------------


def box(kind: bytes, *payloads: bytes) -> bytes:
    """An ISO BMFF box: 32-bit size, four-character type, payload."""
    body = b"".join(payloads)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payloads: bytes) -> bytes:
    """A box with the version (8 bits) and flags (24 bits) header of a FullBox."""
    return box(kind, struct.pack(">I", (version << 24) | flags), *payloads)


# --- tracks --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoTrack:
    """An H.264 track, described by its AVCDecoderConfigurationRecord (90 kHz timescale)."""

    track_id: int
    avc_record: bytes
    width: int
    height: int
    codec_string: str  # RFC 6381, e.g. "avc1.64001f"
    timescale: int = VIDEO_TIMESCALE

    @classmethod
    def from_avc_record(cls, track_id: int, record: bytes) -> VideoTrack:
        """Raises ValueError when the record is malformed."""
        avc = parse_avc_config(record)
        return cls(track_id, bytes(record), avc.width, avc.height, avc.codec_string)

    def sample_entry(self) -> bytes:
        visual = (
            bytes(6)
            + struct.pack(">H", 1)  # data_reference_index
            + bytes(16)  # pre_defined, reserved, pre_defined[3]
            + struct.pack(">HHII", self.width, self.height, 0x0048_0000, 0x0048_0000)  # 72 dpi
            + bytes(4)  # reserved
            + struct.pack(">H", 1)  # frame_count
            + bytes(32)  # compressorname
            + struct.pack(">Hh", 0x0018, -1)  # depth, pre_defined
        )
        return box(b"avc1", visual, box(b"avcC", self.avc_record))


@dataclass(frozen=True)
class AudioTrack:
    """An AAC track, described by its AudioSpecificConfig (timescale: the sample rate)."""

    track_id: int
    audio_specific_config: bytes
    sample_rate: int
    channels: int
    codec_string: str  # RFC 6381, e.g. "mp4a.40.2"

    @property
    def timescale(self) -> int:
        return self.sample_rate

    @classmethod
    def from_audio_specific_config(cls, track_id: int, asc: bytes) -> AudioTrack:
        """Raises ValueError when the config is malformed."""
        aac = parse_audio_specific_config(asc)
        channels = aac.channels or 2  # 0: defined by a program config element; stereo is a fair guess
        return cls(track_id, bytes(asc), aac.sample_rate, channels, aac.codec_string)

    def sample_entry(self) -> bytes:
        rate = self.sample_rate if self.sample_rate < 0x1_0000 else 0
        audio = (
            bytes(6)
            + struct.pack(">H", 1)  # data_reference_index
            + bytes(8)  # reserved
            + struct.pack(">HHHHI", self.channels, 16, 0, 0, rate << 16)
        )
        return box(b"mp4a", audio, full_box(b"esds", 0, 0, self._es_descriptor()))

    def _es_descriptor(self) -> bytes:
        decoder_specific = _descriptor(0x05, self.audio_specific_config)
        decoder_config = _descriptor(
            0x04,
            struct.pack(">BB", 0x40, (0x05 << 2) | 1)  # objectTypeIndication: MPEG-4 audio; streamType: audio
            + struct.pack(">I", 0)[1:]  # bufferSizeDB (24 bits)
            + struct.pack(">II", 0, 0)  # maxBitrate, avgBitrate: unknown
            + decoder_specific,
        )
        sl_config = _descriptor(0x06, b"\x02")  # predefined: MP4
        return _descriptor(0x03, struct.pack(">HB", 0, 0) + decoder_config + sl_config)


Track = VideoTrack | AudioTrack


def _descriptor(tag: int, payload: bytes) -> bytes:
    """An MPEG-4 descriptor (ISO 14496-1) with its size in the 7-bits-per-byte expandable form."""
    size = len(payload)
    groups = [size & 0x7F]
    size >>= 7
    while size:
        groups.append(0x80 | (size & 0x7F))
        size >>= 7
    return bytes([tag, *reversed(groups)]) + payload


# --- init segment --------------------------------------------------------------------------------


def init_segment(tracks: Sequence[Track]) -> bytes:
    """``ftyp`` + ``moov`` describing ``tracks`` (no samples: they come in fragments)."""
    if not tracks:
        raise ValueError("an init segment needs at least one track")
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6", b"cmfc", b"isom", b"mp41")
    mvhd = full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, MOVIE_TIMESCALE, 0),  # creation, modification, timescale, duration
        struct.pack(">IH", 0x0001_0000, 0x0100),  # rate 1.0, volume 1.0
        bytes(10),  # reserved
        _UNITY_MATRIX,
        bytes(24),  # pre_defined
        struct.pack(">I", max(track.track_id for track in tracks) + 1),  # next_track_ID
    )
    traks = [_trak(track) for track in tracks]
    trexs = [full_box(b"trex", 0, 0, struct.pack(">IIIII", track.track_id, 1, 0, 0, 0)) for track in tracks]
    return ftyp + box(b"moov", mvhd, *traks, box(b"mvex", *trexs))


def _trak(track: Track) -> bytes:
    video = isinstance(track, VideoTrack)
    tkhd = full_box(
        b"tkhd",
        0,
        0x000003,  # track_enabled | track_in_movie
        struct.pack(">IIIII", 0, 0, track.track_id, 0, 0),  # creation, modification, id, reserved, duration
        bytes(8),  # reserved
        struct.pack(">hhhH", 0, 0, 0, 0 if video else 0x0100),  # layer, alternate_group, volume, reserved
        _UNITY_MATRIX,
        struct.pack(">II", track.width << 16, track.height << 16) if video else bytes(8),
    )
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, track.timescale, 0, _LANGUAGE_UND, 0))
    handler, name = (b"vide", b"VideoHandler") if video else (b"soun", b"SoundHandler")
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), handler, bytes(12), name + b"\x00")
    media_header = full_box(b"vmhd", 0, 1, bytes(8)) if video else full_box(b"smhd", 0, 0, bytes(4))
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    empty_table = struct.pack(">I", 0)
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), track.sample_entry()),
        full_box(b"stts", 0, 0, empty_table),
        full_box(b"stsc", 0, 0, empty_table),
        full_box(b"stsz", 0, 0, struct.pack(">II", 0, 0)),
        full_box(b"stco", 0, 0, empty_table),
    )
    minf = box(b"minf", media_header, dinf, stbl)
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


# --- media fragments -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One access unit, with its duration and composition offset in its track's timescale."""

    data: bytes
    duration: int
    keyframe: bool = True
    composition_offset: int = 0


@dataclass(frozen=True, slots=True)
class TrackFragment:
    """The samples of one track in one fragment, starting at ``base_decode_time`` (track timescale)."""

    track_id: int
    base_decode_time: int
    samples: Sequence[Sample]


def media_fragment(sequence_number: int, fragments: Iterable[TrackFragment]) -> bytes:
    """``moof`` + ``mdat`` carrying the samples of ``fragments`` (tracks without samples are left out)."""
    fragments = [fragment for fragment in fragments if fragment.samples]
    if not fragments:
        raise ValueError("a media fragment needs at least one sample")
    data_starts = []
    position = 0
    for fragment in fragments:
        data_starts.append(position)
        position += sum(len(sample.data) for sample in fragment.samples)
    mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", sequence_number))
    # The trun data offsets count from the start of the moof, whose size does not depend on them.
    moof_size = 8 + len(mfhd) + sum(len(_traf(fragment, 0)) for fragment in fragments)
    trafs = [_traf(fragment, moof_size + 8 + start) for fragment, start in zip(fragments, data_starts, strict=True)]
    mdat_payload = b"".join(sample.data for fragment in fragments for sample in fragment.samples)
    return box(b"moof", mfhd, *trafs) + box(b"mdat", mdat_payload)


def _traf(fragment: TrackFragment, data_offset: int) -> bytes:
    tfhd = full_box(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, struct.pack(">I", fragment.track_id))
    tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", fragment.base_decode_time))
    samples = fragment.samples
    fields: list[int] = []
    for sample in samples:
        fields += (
            sample.duration,
            len(sample.data),
            SYNC_SAMPLE_FLAGS if sample.keyframe else NON_SYNC_SAMPLE_FLAGS,
            sample.composition_offset,
        )
    flags = (
        TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE | TRUN_SAMPLE_FLAGS | TRUN_SAMPLE_COMPOSITION_OFFSET
    )
    trun = full_box(
        b"trun",
        1,  # version 1: signed composition offsets
        flags,
        struct.pack(">Ii", len(samples), data_offset),
        struct.pack(">" + "IIIi" * len(samples), *fields),
    )
    return box(b"traf", tfhd, tfdt, trun)


# --- timed metadata: emsg + ID3v2.4 -------------------------------------------------------------


def emsg_box(
    message: bytes,
    *,
    timescale: int,
    presentation_time: int,
    event_id: int,
    duration: int = UNKNOWN_EVENT_DURATION,
    scheme_id_uri: str = ID3_EMSG_SCHEME,
    value: str = "",
) -> bytes:
    """A version 1 ``emsg`` (ISO 23009-1 5.10.3.3): an event at an absolute ``presentation_time``.

    Placed before the ``moof`` of the fragment it belongs to. For ID3 timed metadata (AOM
    "Carriage of ID3 Timed Metadata in CMAF"), ``message`` is a whole ID3v2 tag.
    """
    return full_box(
        b"emsg",
        1,
        0,
        struct.pack(">IQII", timescale, presentation_time, duration, event_id),
        scheme_id_uri.encode() + b"\x00",
        value.encode() + b"\x00",
        message,
    )


def syncsafe(value: int) -> bytes:
    """A 28-bit integer as 4 bytes of 7 bits each (ID3v2 sizes)."""
    if not 0 <= value < 1 << 28:
        raise ValueError(f"{value} does not fit a syncsafe integer")
    return bytes((value >> shift) & 0x7F for shift in (21, 14, 7, 0))


ID3_UTF8 = b"\x03"  # text encoding byte: UTF-8
_FRAME_ID = re.compile(r"[A-Z0-9]{4}")


def id3_frame(frame_id: str, body: bytes) -> bytes:
    """An ID3v2.4 frame: 4-character id, syncsafe size, no flags."""
    if not _FRAME_ID.fullmatch(frame_id):
        raise ValueError(f"invalid ID3 frame id {frame_id!r}")
    return frame_id.encode("ascii") + syncsafe(len(body)) + b"\x00\x00" + body


def id3_text_frame(frame_id: str, text: str) -> bytes:
    """A text information frame (``T???`` except ``TXXX``, e.g. ``TIT2``), UTF-8 encoded."""
    if not frame_id.startswith("T") or frame_id == "TXXX":
        raise ValueError(f"{frame_id!r} is not a text information frame")
    return id3_frame(frame_id, ID3_UTF8 + text.encode())


def id3_txxx_frame(description: str, value: str) -> bytes:
    """A user-defined text frame: description and value, UTF-8 encoded."""
    return id3_frame("TXXX", ID3_UTF8 + description.encode() + b"\x00" + value.encode())


def id3_priv_frame(owner: str, data: bytes) -> bytes:
    """A private frame: owner identifier (ISO-8859-1) and binary data."""
    return id3_frame("PRIV", owner.encode("latin-1") + b"\x00" + data)


def id3_tag(frames: Iterable[bytes]) -> bytes:
    """An ID3v2.4 tag (no extended header, no footer) holding ``frames``."""
    body = b"".join(frames)
    return b"ID3" + b"\x04\x00" + b"\x00" + syncsafe(len(body)) + body
