"""MPEG-2 transport stream muxer for H.264 + AAC, as HLS segments carry them.

One `TsMuxer` per stream, kept across segments, so that continuity counters and the
90 kHz timeline run on from one segment to the next. It takes packets as FLV/RTMP
carries them (see `media_engine.packets`) and appends 188-byte TS packets to an internal
buffer that the segmenter takes at each cut:

- H.264: AVCC (length-prefixed) access units become Annex B, each starting with an access
  unit delimiter; the SPS/PPS of the AVCDecoderConfigurationRecord are inserted before each
  IDR picture. One PES per access unit (PES_packet_length 0), with PCR and
  random_access_indicator in the adaptation field of the first TS packet of a keyframe.
- AAC: raw frames get an ADTS header built from the AudioSpecificConfig; a few frames are
  gathered into one PES (less TS overhead).
- PCR is carried on the video PID, or on the audio PID for an audio-only stream.
- Timed metadata (ID3 tags, e.g. from OME's :sendEvent): once enabled, a third elementary stream
  (stream_type 0x15, "ID3 " metadata descriptor, PES private_stream_1) as Apple's "Timed Metadata
  for HTTP Live Streaming" and ffmpeg's ``timed_id3`` carry it; a tag's PTS places it on the timeline.

Timestamps come in milliseconds and go out at 90 kHz, shifted so that the first packet's
DTS maps to `TIMESTAMP_OFFSET_90K` (1.4 s, as ffmpeg does): negative composition offsets
and audio slightly ahead of video stay non-negative, and PTS is never below DTS.

This is the hot path of HLS packaging: payload bytes are only ever moved by slicing
(memoryview) into a bytearray, headers are precomputed per PID and continuity counter, and
Python-level loops run per TS packet or per NAL unit, never per byte.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable

logger = logging.getLogger(__name__)

TS_PACKET_SIZE = 188
TS_PAYLOAD_SIZE = 184
SYNC_BYTE = 0x47

PAT_PID = 0x0000
PMT_PID = 0x1000
VIDEO_PID = 0x0100
AUDIO_PID = 0x0101
METADATA_PID = 0x0102
PROGRAM_NUMBER = 1
TRANSPORT_STREAM_ID = 1

STREAM_TYPE_H264 = 0x1B
STREAM_TYPE_AAC_ADTS = 0x0F
STREAM_TYPE_METADATA = 0x15  # metadata carried in PES packets
STREAM_ID_VIDEO = 0xE0
STREAM_ID_AUDIO = 0xC0
STREAM_ID_PRIVATE_1 = 0xBD
# metadata_descriptor (ISO 13818-1 2.6.60): application format 0xFFFF + "ID3 ", format 0xFF + "ID3 ",
# service id 0, no locator record, MPEG carriage 0 (same transport stream), reserved bits set.
ID3_METADATA_DESCRIPTOR = bytes((0x26, 13)) + b"\xff\xffID3 \xffID3 \x00\x0f"
MAX_METADATA_SIZE = 65_000  # a metadata PES has an explicit length (16 bits)

TIMESTAMP_OFFSET_90K = 126_000  # 1.4 s: room for negative composition offsets / early audio
PCR_DELAY_90K = 0  # PCR = DTS of the PES that carries it (minus this)
MAX_TIMESTAMP = (1 << 33) - 1

AUDIO_FRAMES_PER_PES = 5  # ~116 ms of AAC at 44.1 kHz
AUDIO_PES_MAX_BYTES = 2930  # like ffmpeg's default pes_payload_size

START_CODE = b"\x00\x00\x00\x01"
AUD_NAL = START_CODE + b"\x09\xf0"  # access unit delimiter, primary_pic_type 7 (any)

NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

ADTS_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


# --- CRC32/MPEG-2 (PSI sections) -------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, no reflection) of a PSI section.

    Only used on the few dozen bytes of PAT/PMT sections, built once per configuration.
    """
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


# --- timestamps ---------------------------------------------------------------------------------


def encode_timestamp(prefix: int, ts: int) -> bytes:
    """The 5-byte PES encoding of a 33-bit 90 kHz timestamp (prefix 2: PTS only, 3: PTS+DTS, 1: DTS)."""
    ts &= MAX_TIMESTAMP
    return bytes(
        (
            (prefix << 4) | ((ts >> 29) & 0x0E) | 1,
            (ts >> 22) & 0xFF,
            ((ts >> 14) & 0xFE) | 1,
            (ts >> 7) & 0xFF,
            ((ts << 1) & 0xFE) | 1,
        )
    )


def decode_timestamp(data: bytes) -> int:
    """The 33-bit timestamp of a 5-byte PES PTS/DTS field."""
    return ((data[0] >> 1) & 0x07) << 30 | data[1] << 22 | (data[2] >> 1) << 15 | data[3] << 7 | data[4] >> 1


def encode_pcr(pcr_base: int) -> bytes:
    """The 6-byte adaptation-field PCR for a 90 kHz base (extension 0)."""
    pcr_base &= MAX_TIMESTAMP
    return bytes(
        (
            (pcr_base >> 25) & 0xFF,
            (pcr_base >> 17) & 0xFF,
            (pcr_base >> 9) & 0xFF,
            (pcr_base >> 1) & 0xFF,
            ((pcr_base & 1) << 7) | 0x7E,
            0x00,
        )
    )


def decode_pcr(data: bytes) -> int:
    """The 27 MHz value of a 6-byte PCR field."""
    base = data[0] << 25 | data[1] << 17 | data[2] << 9 | data[3] << 1 | data[4] >> 7
    ext = (data[4] & 1) << 8 | data[5]
    return base * 300 + ext


# --- codec configuration ------------------------------------------------------------------------


class AvcConfig:
    """What the muxer needs from an AVCDecoderConfigurationRecord: NAL length size and SPS/PPS."""

    __slots__ = ("length_size", "parameter_sets", "sps")

    def __init__(self, record: bytes) -> None:
        self.length_size = 4
        self.sps: list[bytes] = []
        pps: list[bytes] = []
        if record[:4] == START_CODE or record[:3] == b"\x00\x00\x01":
            # Already Annex B (not what FLV carries, but harmless to accept).
            self.parameter_sets = bytes(record) if record[:4] == START_CODE else b"\x00" + bytes(record)
            return
        if len(record) < 7 or record[0] != 1:
            raise ValueError("not an AVCDecoderConfigurationRecord")
        self.length_size = (record[4] & 0x03) + 1
        pos = 5
        for count_mask, target in ((0x1F, self.sps), (0xFF, pps)):
            if pos >= len(record):
                break
            count = record[pos] & count_mask
            pos += 1
            for _ in range(count):
                size = int.from_bytes(record[pos : pos + 2], "big")
                pos += 2
                target.append(bytes(record[pos : pos + size]))
                pos += size
        self.parameter_sets = b"".join(START_CODE + nal for nal in self.sps + pps)


class AacConfig:
    """The ADTS header fields of an AudioSpecificConfig."""

    __slots__ = ("channels", "profile", "sample_rate", "sampling_index", "_head")

    def __init__(self, asc: bytes) -> None:
        if len(asc) < 2:
            raise ValueError("AudioSpecificConfig too short")
        bits = int.from_bytes(asc[:8].ljust(8, b"\x00"), "big")
        pos = 64

        def read(n: int) -> int:
            nonlocal pos
            pos -= n
            return (bits >> pos) & ((1 << n) - 1)

        def object_type() -> int:
            aot = read(5)
            return 32 + read(6) if aot == 31 else aot

        def sampling() -> tuple[int, int]:
            index = read(4)
            return (index, read(24)) if index == 15 else (index, ADTS_SAMPLE_RATES[min(index, 12)])

        aot = object_type()
        index, rate = sampling()
        channels = read(4)
        if aot in (5, 29):  # explicit SBR/PS signalling: ADTS describes the AAC-LC core
            sampling()
            aot = object_type()
        if index == 15:  # explicit rate: ADTS needs an index; take the nearest one
            index = min(range(13), key=lambda i: abs(ADTS_SAMPLE_RATES[i] - rate))
        self.profile = min(max(aot - 1, 0), 3)
        self.sampling_index = index
        self.sample_rate = rate
        self.channels = channels
        self._head = bytes((0xFF, 0xF1, (self.profile << 6) | (index << 2) | ((channels >> 2) & 1)))

    def adts_header(self, payload_size: int) -> bytes:
        """The 7-byte ADTS header (no CRC) of one raw frame of ``payload_size`` bytes."""
        size = payload_size + 7
        return self._head + bytes(
            (((self.channels & 3) << 6) | (size >> 11), (size >> 3) & 0xFF, ((size & 7) << 5) | 0x1F, 0xFC)
        )


# --- TS packet helpers --------------------------------------------------------------------------


def _continuation_headers(pid: int) -> tuple[bytes, ...]:
    """4-byte headers of full payload-only packets of ``pid``, by continuity counter."""
    return tuple(bytes((SYNC_BYTE, (pid >> 8) & 0x1F, pid & 0xFF, 0x10 | cc)) for cc in range(16))


def _packet_header(pid: int, cc: int, payload_size: int, pusi: bool, af_body: bytes | None) -> bytes:
    """Header + adaptation field of a packet carrying ``payload_size`` (≤ 184) payload bytes.

    ``af_body`` is the adaptation field content after its length byte (flags, PCR...); the
    field is created or padded with 0xFF stuffing so that the packet is exactly 188 bytes.
    """
    first = (0x40 if pusi else 0x00) | ((pid >> 8) & 0x1F)
    af_size = TS_PAYLOAD_SIZE - payload_size  # total adaptation field bytes, length byte included
    if af_body is None:
        if af_size == 0:
            return bytes((SYNC_BYTE, first, pid & 0xFF, 0x10 | cc))
        if af_size == 1:
            af = b"\x00"
        else:
            af = bytes((af_size - 1, 0x00)) + b"\xff" * (af_size - 2)
    else:
        stuffing = af_size - 1 - len(af_body)
        if stuffing < 0:
            raise ValueError("adaptation field does not fit")
        af = bytes((af_size - 1,)) + af_body + b"\xff" * stuffing
    control = 0x30 if payload_size else 0x20
    return bytes((SYNC_BYTE, first, pid & 0xFF, control | cc)) + af


def _psi_packet(pid: int, section: bytes) -> bytearray:
    """A whole TS packet (CC 0, to be patched) carrying one PSI section with its CRC."""
    section = section + crc32_mpeg2(section).to_bytes(4, "big")
    packet = bytearray((SYNC_BYTE, 0x40 | ((pid >> 8) & 0x1F), pid & 0xFF, 0x10, 0x00))
    packet += section
    packet += b"\xff" * (TS_PACKET_SIZE - len(packet))
    return packet


def build_pat(pmt_pid: int = PMT_PID, version: int = 0) -> bytearray:
    """The PAT packet of our single program."""
    body = (
        TRANSPORT_STREAM_ID.to_bytes(2, "big")
        + bytes((0xC1 | ((version & 0x1F) << 1), 0x00, 0x00))
        + PROGRAM_NUMBER.to_bytes(2, "big")
        + (0xE000 | pmt_pid).to_bytes(2, "big")
    )
    section = bytes((0x00, 0xB0 | ((len(body) + 4) >> 8), (len(body) + 4) & 0xFF)) + body
    return _psi_packet(PAT_PID, section)


def build_pmt(streams: Iterable[tuple[int, int] | tuple[int, int, bytes]], pcr_pid: int, version: int = 0) -> bytearray:
    """The PMT packet listing ``(stream_type, pid[, descriptors])`` elementary streams."""
    body = bytearray(PROGRAM_NUMBER.to_bytes(2, "big"))
    body += bytes((0xC1 | ((version & 0x1F) << 1), 0x00, 0x00))
    body += (0xE000 | pcr_pid).to_bytes(2, "big") + b"\xf0\x00"
    for stream_type, pid, *extra in streams:
        descriptors = extra[0] if extra else b""
        body += bytes((stream_type,)) + (0xE000 | pid).to_bytes(2, "big")
        body += (0xF000 | len(descriptors)).to_bytes(2, "big") + descriptors
    length = len(body) + 4
    section = bytes((0x02, 0xB0 | (length >> 8), length & 0xFF)) + bytes(body)
    return _psi_packet(PMT_PID, section)


_CHUNK_BLOCK = 64
_CHUNK_STRUCTS = [struct.Struct(f"{TS_PAYLOAD_SIZE}s" * n) for n in range(_CHUNK_BLOCK + 1)]
_CC_CYCLE = bytes(0x10 | (i & 15) for i in range(16 * 4096))


def _cc_run(first: int, count: int) -> bytes:
    """Byte 3 of ``count`` payload-only packet headers whose continuity counters start at ``first``."""
    first &= 15
    if first + count <= len(_CC_CYCLE):
        return _CC_CYCLE[first : first + count]
    return (_CC_CYCLE[first:16] + _CC_CYCLE[:16] * (count // 16 + 1))[:count]


# --- the muxer ----------------------------------------------------------------------------------


class TsMuxer:
    """MPEG-TS muxer of one stream (H.264 and/or AAC). Output accumulates until `take()`.

    Call `write_tables()` at the start of every segment, then `write_video` / `write_audio`
    for each packet in decoding order, and `flush()` + `take()` at each cut.
    """

    def __init__(
        self,
        video_config: bytes | None = None,
        audio_config: bytes | None = None,
        *,
        base_ms: int | None = None,
        audio_frames_per_pes: int = AUDIO_FRAMES_PER_PES,
    ) -> None:
        self._out = bytearray()
        self._cc = {PAT_PID: 15, PMT_PID: 15, VIDEO_PID: 15, AUDIO_PID: 15, METADATA_PID: 15}
        self._cont = {pid: _continuation_headers(pid) for pid in (VIDEO_PID, AUDIO_PID, METADATA_PID)}
        self._base_ms = base_ms
        self._audio_pending_limit = 2 * max(1, audio_frames_per_pes)  # ADTS header + frame each
        self._audio_pending: list[bytes] = []
        self._audio_pending_size = 0
        self._audio_pending_pts = 0
        self._pmt_version = -1
        self.video: AvcConfig | None = None
        self.audio: AacConfig | None = None
        self.has_video = False
        self.has_audio = False
        self.has_metadata = False
        self.set_tracks(video_config, audio_config)

    # configuration

    def set_tracks(self, video_config: bytes | None, audio_config: bytes | None) -> None:
        """(Re)declare the elementary streams; the PMT version changes if the set of tracks does."""
        had = (self.has_video, self.has_audio)
        self.has_video = video_config is not None
        self.has_audio = audio_config is not None
        if video_config is not None:
            self.set_video_config(video_config)
        if audio_config is not None:
            self.set_audio_config(audio_config)
        if had != (self.has_video, self.has_audio) or self._pmt_version < 0:
            self._build_tables()

    def enable_timed_metadata(self) -> None:
        """Declare the ID3 timed metadata stream (from the next `write_tables()` on)."""
        if not self.has_metadata:
            self.has_metadata = True
            self._build_tables()

    def _build_tables(self) -> None:
        self._pmt_version = (self._pmt_version + 1) & 0x1F
        streams: list[tuple[int, int] | tuple[int, int, bytes]] = []
        if self.has_video:
            streams.append((STREAM_TYPE_H264, VIDEO_PID))
        if self.has_audio:
            streams.append((STREAM_TYPE_AAC_ADTS, AUDIO_PID))
        if self.has_metadata:
            streams.append((STREAM_TYPE_METADATA, METADATA_PID, ID3_METADATA_DESCRIPTOR))
        self.pcr_pid = VIDEO_PID if self.has_video or not self.has_audio else AUDIO_PID
        self._pat = build_pat()
        self._pmt = build_pmt(streams, self.pcr_pid, self._pmt_version)

    def set_video_config(self, record: bytes) -> None:
        """New AVCDecoderConfigurationRecord: its SPS/PPS go before the following IDRs."""
        self.video = AvcConfig(record)

    def set_audio_config(self, asc: bytes) -> None:
        """New AudioSpecificConfig: the following ADTS headers follow it."""
        self.flush()
        self.audio = AacConfig(asc)

    # output

    def take(self) -> bytes:
        """The TS bytes written since the last call."""
        data = bytes(self._out)
        self._out.clear()
        return data

    @property
    def pending_size(self) -> int:
        return len(self._out)

    def write_tables(self) -> None:
        """Write PAT and PMT (at the start of each segment)."""
        for pid, packet in ((PAT_PID, self._pat), (PMT_PID, self._pmt)):
            cc = (self._cc[pid] + 1) & 15
            self._cc[pid] = cc
            packet[3] = 0x10 | cc
            self._out += packet

    def to_90k(self, ms: int) -> int:
        """Our 90 kHz time of a millisecond timestamp (the first one seen fixes the origin)."""
        if self._base_ms is None:
            self._base_ms = ms
        ts = (ms - self._base_ms) * 90 + TIMESTAMP_OFFSET_90K
        return ts & MAX_TIMESTAMP if ts > 0 else 0

    def write_video(self, dts: int, pts: int, payload: bytes, keyframe: bool) -> None:
        """Mux one H.264 access unit (AVCC payload, timestamps in ms)."""
        config = self.video
        if config is None:
            raise ValueError("no H.264 configuration")
        dts90 = self.to_90k(dts)
        pts90 = self.to_90k(pts)
        if pts90 < dts90:
            pts90 = dts90
        if pts90 != dts90:
            header = (
                bytes((0, 0, 1, STREAM_ID_VIDEO, 0, 0, 0x84, 0xC0, 10))
                + encode_timestamp(3, pts90)
                + encode_timestamp(1, dts90)
            )
        else:
            header = bytes((0, 0, 1, STREAM_ID_VIDEO, 0, 0, 0x84, 0x80, 5)) + encode_timestamp(2, pts90)
        pes = bytearray(header)
        pes += AUD_NAL
        self._append_annexb(pes, payload, config, keyframe)
        pcr = dts90 - PCR_DELAY_90K if self.pcr_pid == VIDEO_PID else None
        self._packetize(VIDEO_PID, pes, pcr, keyframe)

    def write_audio(self, pts: int, payload: bytes) -> None:
        """Mux one raw AAC frame (timestamp in ms); frames are grouped into PES packets."""
        config = self.audio
        if config is None:
            raise ValueError("no AAC configuration")
        size = len(payload) + 7
        pending = self._audio_pending
        if pending and (
            len(pending) >= self._audio_pending_limit or self._audio_pending_size + size > AUDIO_PES_MAX_BYTES
        ):
            self.flush()
        if not pending:
            self._audio_pending_pts = self.to_90k(pts)
        pending.append(config.adts_header(len(payload)))
        pending.append(payload)
        self._audio_pending_size += size

    def write_timed_metadata(self, pts: int, id3: bytes) -> None:
        """Mux one ID3 tag presented at ``pts`` (ms); `enable_timed_metadata` must have been called."""
        if not self.has_metadata:
            raise ValueError("timed metadata is not enabled")
        if len(id3) > MAX_METADATA_SIZE:
            raise ValueError("ID3 tag too large for one PES packet")
        length = 8 + len(id3)
        pes = bytearray((0, 0, 1, STREAM_ID_PRIVATE_1, length >> 8, length & 0xFF, 0x84, 0x80, 5))
        pes += encode_timestamp(2, self.to_90k(pts))
        pes += id3
        self._packetize(METADATA_PID, pes, None, False)

    def flush(self) -> None:
        """Write out the grouped audio frames (done before each cut)."""
        pending = self._audio_pending
        if not pending:
            return
        pts90 = self._audio_pending_pts
        length = 8 + self._audio_pending_size
        pes = bytearray((0, 0, 1, STREAM_ID_AUDIO, length >> 8, length & 0xFF, 0x80, 0x80, 5))
        pes += encode_timestamp(2, pts90)
        for chunk in pending:
            pes += chunk
        pending.clear()
        self._audio_pending_size = 0
        pcr = pts90 - PCR_DELAY_90K if self.pcr_pid == AUDIO_PID else None
        self._packetize(AUDIO_PID, pes, pcr, False)

    # internals

    @staticmethod
    def _append_annexb(pes: bytearray, payload: bytes, config: AvcConfig, keyframe: bool) -> None:
        """Append the NAL units of an AVCC access unit with start codes (+ SPS/PPS before an IDR)."""
        view = memoryview(payload)
        end = len(payload)
        length_size = config.length_size
        nals: list[tuple[int, int]] = []
        pos = 0
        idr = keyframe
        has_sps = False
        while pos + length_size <= end:
            size = int.from_bytes(view[pos : pos + length_size], "big")
            start = pos + length_size
            pos = start + size
            if pos > end:  # truncated access unit: keep what is there
                pos = end
            if pos <= start:
                continue
            nal_type = payload[start] & 0x1F
            if nal_type == NAL_AUD:
                continue
            if nal_type == NAL_IDR:
                idr = True
            elif nal_type == NAL_SPS:
                has_sps = True
            nals.append((start, pos))
        if idr and not has_sps:
            pes += config.parameter_sets
        for start, stop in nals:
            pes += START_CODE
            pes += view[start:stop]

    def _packetize(self, pid: int, pes: bytearray, pcr: int | None, random_access: bool) -> None:
        """Split one PES into TS packets of ``pid`` and append them to the output."""
        out = self._out
        total = len(pes)
        view = memoryview(pes)
        cc = (self._cc[pid] + 1) & 15

        # First packet: payload_unit_start, and the adaptation field if PCR/RAI are needed.
        if pcr is not None or random_access:
            af_body = bytes(((0x40 if random_access else 0) | (0x10 if pcr is not None else 0),))
            if pcr is not None:
                af_body += encode_pcr(pcr if pcr > 0 else 0)
            capacity = TS_PAYLOAD_SIZE - 1 - len(af_body)
        else:
            af_body = None
            capacity = TS_PAYLOAD_SIZE
        take = total if total < capacity else capacity
        if take == TS_PAYLOAD_SIZE:
            out += self._cont[pid][cc]
            out[-3] |= 0x40  # payload_unit_start_indicator
        else:
            out += _packet_header(pid, cc, take, True, af_body)
        out += view[:take]

        # Full continuation packets, without a Python loop per packet: struct cuts the payload
        # into 184-byte pieces, join() puts a header between them, and one strided slice
        # assignment writes the continuity counters into those headers.
        count = (total - take) // TS_PAYLOAD_SIZE
        if count:
            separator = self._cont[pid][0]
            base = len(out)
            out += separator
            if count <= _CHUNK_BLOCK:
                chunks = _CHUNK_STRUCTS[count].unpack_from(pes, take)
            else:
                chunks = []
                blocks, rest = divmod(count, _CHUNK_BLOCK)
                unpack = _CHUNK_STRUCTS[_CHUNK_BLOCK].unpack_from
                step = _CHUNK_BLOCK * TS_PAYLOAD_SIZE
                for offset in range(take, take + blocks * step, step):
                    chunks.extend(unpack(pes, offset))
                if rest:
                    chunks.extend(_CHUNK_STRUCTS[rest].unpack_from(pes, take + blocks * step))
            out += separator.join(chunks)
            out[base + 3 : base + TS_PACKET_SIZE * count : TS_PACKET_SIZE] = _cc_run(cc + 1, count)
            cc = (cc + count) & 15
        pos = take + count * TS_PAYLOAD_SIZE

        # Last, short packet: adaptation field stuffing.
        if pos < total:
            cc = (cc + 1) & 15
            out += _packet_header(pid, cc, total - pos, False, None)
            out += view[pos:]
        self._cc[pid] = cc
