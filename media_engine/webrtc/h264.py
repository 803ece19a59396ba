"""H.264 bitstream forms WebRTC and RTMP disagree on: Annex B (start codes, RTP) and AVCC
(length-prefixed, FLV/MP4), and the AVCDecoderConfigurationRecord built from in-band SPS/PPS.
"""

from __future__ import annotations

NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
START_CODE = b"\x00\x00\x00\x01"


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B buffer (start codes of 3 or 4 bytes), without their start codes."""
    nals = []
    start = data.find(b"\x00\x00\x01")
    while start != -1:
        start += 3
        end = data.find(b"\x00\x00\x01", start)
        if end == -1:
            nal = data[start:]
        else:
            nal = data[start : end - 1] if data[end - 1] == 0 else data[start:end]
        if nal:
            nals.append(nal)
        start = end
    return nals


def split_avcc(payload: bytes, length_size: int = 4) -> list[bytes]:
    """The NAL units of a length-prefixed (AVCC) access unit; raises ValueError if truncated."""
    nals = []
    position = 0
    while position < len(payload):
        if position + length_size > len(payload):
            raise ValueError("truncated NAL unit length")
        length = int.from_bytes(payload[position : position + length_size], "big")
        position += length_size
        if position + length > len(payload):
            raise ValueError("truncated NAL unit")
        nals.append(payload[position : position + length])
        position += length
    return nals


def to_avcc(nals: list[bytes]) -> bytes:
    return b"".join(len(nal).to_bytes(4, "big") + nal for nal in nals)


def to_annexb(nals: list[bytes]) -> bytes:
    return b"".join(START_CODE + nal for nal in nals)


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F if nal else 0


def avc_decoder_configuration(sps: bytes, pps: bytes) -> bytes:
    """An AVCDecoderConfigurationRecord (ISO 14496-15) for one SPS and one PPS, 4-byte NAL lengths."""
    if len(sps) < 4:
        raise ValueError("SPS too short")
    return (
        bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1])
        + len(sps).to_bytes(2, "big")
        + sps
        + b"\x01"
        + len(pps).to_bytes(2, "big")
        + pps
    )
