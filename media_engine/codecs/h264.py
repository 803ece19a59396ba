"""H.264 configuration: the AVCDecoderConfigurationRecord and the SPS fields a stream info shows."""

from __future__ import annotations

from dataclasses import dataclass

from media_engine.codecs.bitreader import BitReader

# profile_idc values whose SPS carries chroma_format_idc and scaling lists.
HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


@dataclass(frozen=True)
class AvcConfig:
    profile: int
    level: int
    nal_length_size: int
    sps: list[bytes]
    pps: list[bytes]
    width: int
    height: int

    @property
    def codec_string(self) -> str:
        """RFC 6381 codec string, e.g. ``avc1.64001f``."""
        compat = self.sps[0][2] if self.sps and len(self.sps[0]) > 2 else 0
        return f"avc1.{self.profile:02x}{compat:02x}{self.level:02x}"


def unescape_rbsp(nal: bytes) -> bytes:
    """Drop emulation-prevention bytes (00 00 03 -> 00 00)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _skip_scaling_list(reader: BitReader, size: int) -> None:
    last, next_scale = 8, 8
    for _ in range(size):
        if next_scale != 0:
            next_scale = (last + reader.se() + 256) % 256
        last = next_scale if next_scale != 0 else last


def parse_sps(nal: bytes) -> tuple[int, int]:
    """Width and height (after cropping) from an SPS NAL unit (with its 1-byte header)."""
    reader = BitReader(unescape_rbsp(nal[1:]))
    profile_idc = reader.bits(8)
    reader.bits(16)  # constraint flags, level_idc
    reader.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    if profile_idc in HIGH_PROFILES:
        chroma_format_idc = reader.ue()
        if chroma_format_idc == 3:
            reader.bit()  # separate_colour_plane_flag
        reader.ue()  # bit_depth_luma_minus8
        reader.ue()  # bit_depth_chroma_minus8
        reader.bit()  # qpprime_y_zero_transform_bypass_flag
        if reader.bit():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if reader.bit():
                    _skip_scaling_list(reader, 16 if index < 6 else 64)
    reader.ue()  # log2_max_frame_num_minus4
    pic_order_cnt_type = reader.ue()
    if pic_order_cnt_type == 0:
        reader.ue()
    elif pic_order_cnt_type == 1:
        reader.bit()
        reader.se()
        reader.se()
        for _ in range(reader.ue()):
            reader.se()
    reader.ue()  # max_num_ref_frames
    reader.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = reader.ue() + 1
    height_map_units = reader.ue() + 1
    frame_mbs_only = reader.bit()
    if not frame_mbs_only:
        reader.bit()  # mb_adaptive_frame_field_flag
    reader.bit()  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = height_map_units * 16 * (2 - frame_mbs_only)
    if reader.bit():  # frame_cropping_flag
        left, right, top, bottom = reader.ue(), reader.ue(), reader.ue(), reader.ue()
        crop_x = 1 if chroma_format_idc in (0, 3) else 2
        crop_y = (1 if chroma_format_idc in (0, 2) else 2) * (2 - frame_mbs_only)
        width -= (left + right) * crop_x
        height -= (top + bottom) * crop_y
    return width, height


def parse_avc_config(record: bytes) -> AvcConfig:
    """Parse an AVCDecoderConfigurationRecord (ISO 14496-15); raises ValueError when malformed."""
    if len(record) < 7 or record[0] != 1:
        raise ValueError("not an AVCDecoderConfigurationRecord")
    profile, level = record[1], record[3]
    nal_length_size = (record[4] & 0x03) + 1
    position = 5
    parameter_sets: list[list[bytes]] = []
    for mask in (0x1F, 0xFF):
        if position >= len(record):
            raise ValueError("truncated AVCDecoderConfigurationRecord")
        count = record[position] & mask
        position += 1
        sets = []
        for _ in range(count):
            if position + 2 > len(record):
                raise ValueError("truncated parameter set length")
            length = int.from_bytes(record[position : position + 2], "big")
            position += 2
            if position + length > len(record):
                raise ValueError("truncated parameter set")
            sets.append(bytes(record[position : position + length]))
            position += length
        parameter_sets.append(sets)
    sps, pps = parameter_sets
    if not sps:
        raise ValueError("no SPS in AVCDecoderConfigurationRecord")
    width, height = parse_sps(sps[0])
    return AvcConfig(profile, level, nal_length_size, sps, pps, width, height)
