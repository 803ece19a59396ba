"""Unit tests of the MPEG-TS muxer: packet structure, PSI, continuity, PES timestamps and payloads."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

import pytest

from media_engine.hls import mpegts
from media_engine.hls.filesource import read_packets
from media_engine.hls.mpegts import (
    AUDIO_PID,
    PAT_PID,
    PMT_PID,
    TIMESTAMP_OFFSET_90K,
    VIDEO_PID,
    AacConfig,
    TsMuxer,
    crc32_mpeg2,
    decode_pcr,
    decode_timestamp,
    encode_pcr,
    encode_timestamp,
)
from media_engine.packets import TrackKind

# A made-up avcC: profile 66, 4-byte NAL lengths, one SPS and one PPS.
FAKE_SPS = b"\x67\x42\x00\x1e\xaa\xbb"
FAKE_PPS = b"\x68\xce\x3c\x80"
FAKE_AVCC = (
    b"\x01\x42\x00\x1e\xff\xe1"
    + len(FAKE_SPS).to_bytes(2, "big")
    + FAKE_SPS
    + b"\x01"
    + len(FAKE_PPS).to_bytes(2, "big")
) + FAKE_PPS
ASC_LC_44100_STEREO = b"\x12\x10"


# --- a small TS demuxer for checking ------------------------------------------------------------


@dataclass
class TsPacket:
    pid: int
    pusi: bool
    cc: int
    has_payload: bool
    adaptation: bytes
    payload: bytes

    @property
    def random_access(self) -> bool:
        return len(self.adaptation) > 0 and bool(self.adaptation[0] & 0x40)

    @property
    def pcr(self) -> int | None:
        if len(self.adaptation) >= 7 and self.adaptation[0] & 0x10:
            return decode_pcr(self.adaptation[1:7])
        return None


def parse_ts(data: bytes) -> list[TsPacket]:
    assert len(data) % 188 == 0, "TS data must be whole 188-byte packets"
    packets = []
    for pos in range(0, len(data), 188):
        pkt = data[pos : pos + 188]
        assert pkt[0] == 0x47, f"bad sync byte at {pos}"
        pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
        control = (pkt[3] >> 4) & 3
        assert control in (1, 2, 3)
        offset = 4
        adaptation = b""
        if control & 2:
            length = pkt[4]
            adaptation = pkt[5 : 5 + length]
            offset = 5 + length
            assert offset <= 188
        packets.append(TsPacket(pid, bool(pkt[1] & 0x40), pkt[3] & 15, bool(control & 1), adaptation, pkt[offset:]))
    return packets


@dataclass
class Pes:
    pid: int
    data: bytearray = field(default_factory=bytearray)
    random_access: bool = False
    pcr: int | None = None

    @property
    def header_length(self) -> int:
        return 9 + self.data[8]

    @property
    def pts(self) -> int:
        assert self.data[7] & 0x80
        return decode_timestamp(self.data[9:14])

    @property
    def dts(self) -> int:
        return decode_timestamp(self.data[14:19]) if self.data[7] & 0x40 else self.pts

    @property
    def payload(self) -> bytes:
        return bytes(self.data[self.header_length :])


def collect_pes(packets: list[TsPacket]) -> dict[int, list[Pes]]:
    result: dict[int, list[Pes]] = defaultdict(list)
    for packet in packets:
        if packet.pid in (PAT_PID, PMT_PID) or not packet.has_payload:
            continue
        if packet.pusi:
            result[packet.pid].append(Pes(packet.pid, random_access=packet.random_access, pcr=packet.pcr))
        result[packet.pid][-1].data += packet.payload
    return result


def split_annexb(data: bytes) -> list[bytes]:
    parts = data.split(b"\x00\x00\x00\x01")
    assert parts[0] == b""
    return parts[1:]


def check_continuity(packets: list[TsPacket]) -> None:
    last: dict[int, int] = {}
    for packet in packets:
        if not packet.has_payload:
            continue
        if packet.pid in last:
            assert packet.cc == (last[packet.pid] + 1) & 15, f"CC jump on PID {packet.pid:#x}"
        last[packet.pid] = packet.cc


def psi_section(packet: TsPacket) -> bytes:
    pointer = packet.payload[0]
    data = packet.payload[1 + pointer :]
    length = ((data[1] & 0x0F) << 8) | data[2]
    return data[: 3 + length]


# --- tests ----------------------------------------------------------------------------------------


def test_crc32_mpeg2_reference_value() -> None:
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7


@pytest.mark.parametrize("prefix", [1, 2, 3])
def test_timestamp_round_trip(prefix: int) -> None:
    rng = random.Random(1)
    values = [0, 1, 90_000, TIMESTAMP_OFFSET_90K, (1 << 32) + 12345, (1 << 33) - 1]
    values += [rng.randrange(1 << 33) for _ in range(200)]
    for value in values:
        encoded = encode_timestamp(prefix, value)
        assert len(encoded) == 5
        assert encoded[0] >> 4 == prefix
        assert encoded[0] & 1 and encoded[2] & 1 and encoded[4] & 1  # marker bits
        assert decode_timestamp(encoded) == value
    assert decode_timestamp(encode_timestamp(2, (1 << 33) + 7)) == 7  # wraps at 33 bits


def test_pcr_round_trip() -> None:
    for base in (0, 1, 126_000, (1 << 33) - 1):
        assert decode_pcr(encode_pcr(base)) == base * 300


def test_audio_specific_config_to_adts() -> None:
    config = AacConfig(ASC_LC_44100_STEREO)
    assert (config.profile, config.sampling_index, config.sample_rate, config.channels) == (1, 4, 44100, 2)
    header = config.adts_header(100)
    assert header[:2] == b"\xff\xf1"
    assert ((header[3] & 3) << 11) | (header[4] << 3) | (header[5] >> 5) == 107
    he_aac = AacConfig(bytes.fromhex("2b920800"))  # HE-AAC, explicit SBR signalling (core: LC)
    assert he_aac.profile == 1


def test_tables_and_structure_of_a_real_stream(av_flv) -> None:
    packets = read_packets(av_flv)
    video_config = next(p.payload for p in packets if p.config and p.kind is TrackKind.VIDEO)
    audio_config = next(p.payload for p in packets if p.config and p.kind is TrackKind.AUDIO)
    muxer = TsMuxer(video_config, audio_config)
    muxer.write_tables()
    media = [p for p in packets if not p.config]
    for packet in media[: len(media) // 2]:
        if packet.kind is TrackKind.VIDEO:
            muxer.write_video(packet.dts, packet.pts, packet.payload, packet.keyframe)
        else:
            muxer.write_audio(packet.pts, packet.payload)
    muxer.flush()
    first = muxer.take()
    muxer.write_tables()  # a second "segment": counters carry on
    for packet in media[len(media) // 2 :]:
        if packet.kind is TrackKind.VIDEO:
            muxer.write_video(packet.dts, packet.pts, packet.payload, packet.keyframe)
        else:
            muxer.write_audio(packet.pts, packet.payload)
    muxer.flush()
    data = first + muxer.take()

    ts = parse_ts(data)
    assert all(len(data[i : i + 188]) == 188 for i in range(0, len(data), 188))
    check_continuity(ts)
    assert {p.pid for p in ts} == {PAT_PID, PMT_PID, VIDEO_PID, AUDIO_PID}

    # PAT and PMT: CRC, program, streams, PCR PID
    pat = psi_section(next(p for p in ts if p.pid == PAT_PID))
    pmt = psi_section(next(p for p in ts if p.pid == PMT_PID))
    for section in (pat, pmt):
        assert crc32_mpeg2(section[:-4]) == int.from_bytes(section[-4:], "big")
        assert crc32_mpeg2(section) == 0
    assert pat[0] == 0x00 and ((pat[10] & 0x1F) << 8 | pat[11]) == PMT_PID
    assert pmt[0] == 0x02
    assert ((pmt[8] & 0x1F) << 8 | pmt[9]) == VIDEO_PID  # PCR PID
    es = pmt[12:-4]
    assert (es[0], (es[1] & 0x1F) << 8 | es[2]) == (0x1B, VIDEO_PID)
    assert (es[5], (es[6] & 0x1F) << 8 | es[7]) == (0x0F, AUDIO_PID)

    pes = collect_pes(ts)
    video = pes[VIDEO_PID]
    audio = pes[AUDIO_PID]
    video_media = [p for p in media if p.kind is TrackKind.VIDEO]
    assert len(video) == len(video_media)
    assert video[0].dts == TIMESTAMP_OFFSET_90K
    for ours, original in zip(video, video_media, strict=True):
        assert ours.pts >= ours.dts
        assert ours.dts - video[0].dts == (original.dts - video_media[0].dts) * 90
        assert ours.pts - ours.dts == (original.pts - original.dts) * 90
        assert ours.pcr is not None and ours.pcr <= ours.dts * 300
        assert ours.random_access == original.keyframe
        nals = split_annexb(ours.payload)
        assert nals[0][0] & 0x1F == 9  # AUD first
        types = [nal[0] & 0x1F for nal in nals]
        if original.keyframe:
            assert types.index(7) < types.index(8) < types.index(5)
        else:
            assert 7 not in types and 5 not in types
    # audio: ADTS frames chained inside each PES, in timestamp order
    frames = 0
    last_pts = -1
    for packet in audio:
        assert packet.pts > last_pts
        last_pts = packet.pts
        payload = packet.payload
        pos = 0
        while pos < len(payload):
            assert payload[pos : pos + 2] == b"\xff\xf1"
            pos += ((payload[pos + 3] & 3) << 11) | (payload[pos + 4] << 3) | (payload[pos + 5] >> 5)
            frames += 1
        assert pos == len(payload)
        assert len(packet.data) - 6 == int.from_bytes(packet.data[4:6], "big")  # PES_packet_length
    assert frames == sum(1 for p in media if p.kind is TrackKind.AUDIO)


def test_every_pes_size_packs_exactly() -> None:
    """Payload sizes around packet boundaries: stuffing makes whole packets, PES comes back intact."""
    muxer = TsMuxer(FAKE_AVCC, None)
    sizes = list(range(1, 400)) + [184 * k + d for k in range(2, 12) for d in range(-12, 12)] + [100_000]
    expected = []
    for i, size in enumerate(sizes):
        nal = bytes([0x41]) + bytes((i + j) & 0xFF for j in range(size - 1))  # non-IDR slice
        keyframe = i % 7 == 0
        if keyframe:
            nal = bytes([0x65]) + nal[1:]
        muxer.write_video(i * 40, i * 40 + 80, len(nal).to_bytes(4, "big") + nal, keyframe)
        body = b"\x00\x00\x00\x01\x09\xf0"
        if keyframe:
            body += b"\x00\x00\x00\x01" + FAKE_SPS + b"\x00\x00\x00\x01" + FAKE_PPS
        expected.append(body + b"\x00\x00\x00\x01" + nal)
    ts = parse_ts(muxer.take())
    check_continuity(ts)
    pes = collect_pes(ts)[VIDEO_PID]
    assert [p.payload for p in pes] == expected
    assert [p.dts for p in pes] == [TIMESTAMP_OFFSET_90K + i * 3600 for i in range(len(sizes))]
    assert [p.pts - p.dts for p in pes] == [7200] * len(sizes)


def test_audio_only_stream_has_pcr_on_audio() -> None:
    muxer = TsMuxer(None, ASC_LC_44100_STEREO, audio_frames_per_pes=3)
    muxer.write_tables()
    for i in range(20):
        muxer.write_audio(i * 23, bytes([i]) * (50 + i))
    muxer.flush()
    ts = parse_ts(muxer.take())
    check_continuity(ts)
    pmt = psi_section(next(p for p in ts if p.pid == PMT_PID))
    assert ((pmt[8] & 0x1F) << 8 | pmt[9]) == AUDIO_PID
    assert {p.pid for p in ts} == {PAT_PID, PMT_PID, AUDIO_PID}
    audio = collect_pes(ts)[AUDIO_PID]
    assert len(audio) == 7  # 20 frames, 3 per PES
    assert all(p.pcr is not None for p in audio)
    assert audio[0].pts == TIMESTAMP_OFFSET_90K
    assert audio[1].pts == TIMESTAMP_OFFSET_90K + 3 * 23 * 90


def test_negative_composition_and_early_audio_stay_non_negative() -> None:
    muxer = TsMuxer(FAKE_AVCC, ASC_LC_44100_STEREO, base_ms=1000)
    nal = b"\x65\x88\x84"
    muxer.write_video(1000, 990, len(nal).to_bytes(4, "big") + nal, True)  # pts < dts: clamped
    muxer.write_audio(0, b"\x21" * 10)  # 1 s before the origin: still positive thanks to the offset
    muxer.flush()
    pes = collect_pes(parse_ts(muxer.take()))
    video = pes[VIDEO_PID][0]
    assert video.pts == video.dts == TIMESTAMP_OFFSET_90K
    assert pes[AUDIO_PID][0].pts == TIMESTAMP_OFFSET_90K - 1000 * 90


def test_cc_run_wraps() -> None:
    run = mpegts._cc_run(5, 40)
    assert [b & 15 for b in run] == [(5 + i) & 15 for i in range(40)]
    big = mpegts._cc_run(3, 16 * 4096 + 5)
    assert len(big) == 16 * 4096 + 5
    assert all(b & 15 == (3 + i) & 15 for i, b in enumerate(big[-40:], start=len(big) - 40))


def test_malformed_access_units_do_not_break_the_muxer() -> None:
    muxer = TsMuxer(FAKE_AVCC, None)
    good = b"\x65\x88\x84\x00"
    muxer.write_video(0, 0, len(good).to_bytes(4, "big") + good + b"\x00\x00\x00\x09", True)  # length, no data
    muxer.write_video(40, 40, b"\x00\x00\x00\x10\x41\x9a", False)  # NAL shorter than its length
    muxer.write_video(80, 80, b"\x00\x00", False)  # not even a length
    pes = collect_pes(parse_ts(muxer.take()))[VIDEO_PID]
    assert [split_annexb(p.payload)[-1] for p in pes] == [good, b"\x41\x9a", b"\x09\xf0"]
