"""FLV tag bodies <-> MediaPackets: the recorded ffmpeg stream, HEVC, unsupported codecs, aggregates."""

from __future__ import annotations

import pytest

from media_engine.packets import MediaPacket, TrackKind
from media_engine.rtmp import amf0, flv
from media_engine.rtmp.chunks import MessageType

from .rtmp_client import ffmpeg_publish_messages


def recorded_packets() -> list[MediaPacket]:
    demuxer = flv.FlvDemuxer()
    packets = []
    for message in ffmpeg_publish_messages():
        if message.type_id == MessageType.VIDEO:
            packet = demuxer.video(message.payload, message.timestamp)
        elif message.type_id == MessageType.AUDIO:
            packet = demuxer.audio(message.payload, message.timestamp)
        elif message.type_id == MessageType.DATA_AMF0:
            packet = demuxer.data(message.payload, message.timestamp)
        else:
            continue
        if packet is not None:
            packets.append(packet)
    return packets


def test_the_recorded_stream_becomes_metadata_configs_and_access_units():
    packets = recorded_packets()
    metadata, video_config, audio_config = packets[:3]
    assert (metadata.kind, metadata.codec, metadata.config) == (TrackKind.DATA, "amf0", True)
    name, values = amf0.decode_all(metadata.payload)
    assert name == "onMetaData" and values["width"] == 160.0  # @setDataFrame stripped

    assert (video_config.kind, video_config.codec, video_config.config) == (TrackKind.VIDEO, "h264", True)
    assert video_config.payload[0] == 1  # AVCDecoderConfigurationRecord version
    assert (audio_config.kind, audio_config.codec, audio_config.config) == (TrackKind.AUDIO, "aac", True)
    assert audio_config.payload[:2] == b"\x12\x08"  # AudioSpecificConfig: AAC-LC, 44.1 kHz, mono

    video = [p for p in packets if p.kind is TrackKind.VIDEO and not p.config]
    assert len(video) == 50  # 2 s at 25 fps; the end-of-sequence tag carries no media
    assert [p.dts for p in video if p.keyframe] == [0, 1000]
    assert len({p.pts - p.dts for p in video}) > 1  # B-frames: composition offsets are kept
    assert all(p.pts >= p.dts for p in video)
    first = video[0].payload
    nal_length = int.from_bytes(first[:4], "big")
    assert 0 < nal_length < len(first)  # AVCC: 4-byte length-prefixed NAL units
    audio = [p for p in packets if p.kind is TrackKind.AUDIO and not p.config]
    assert len(audio) == 88 and all(p.payload for p in audio)


def test_packets_turn_back_into_the_same_tag_bodies():
    demuxer = flv.FlvDemuxer()
    for message in ffmpeg_publish_messages():
        if message.type_id == MessageType.VIDEO:
            packet = demuxer.video(message.payload, message.timestamp)
        elif message.type_id == MessageType.AUDIO:
            packet = demuxer.audio(message.payload, message.timestamp)
        else:
            continue
        if packet is not None:
            assert flv.message_body(packet) == (message.type_id, message.payload)


def test_hevc_packets_go_out_as_enhanced_rtmp_and_come_back():
    demuxer = flv.FlvDemuxer()
    for packet in [
        MediaPacket(TrackKind.VIDEO, "hevc", 0, 0, b"\x01hvcC", False, True),
        MediaPacket(TrackKind.VIDEO, "hevc", 40, 120, b"\x00\x00\x00\x02\x26\x01", True),
        MediaPacket(TrackKind.VIDEO, "hevc", 80, 40, b"\x00\x00\x00\x02\x02\x01", False),
    ]:
        type_id, body = flv.message_body(packet)
        assert type_id == MessageType.VIDEO and body[0] & 0x80 and body[1:5] == b"hvc1"
        assert demuxer.video(body, packet.dts) == packet


def test_legacy_hevc_codec_id_and_coded_frames_x_are_understood():
    demuxer = flv.FlvDemuxer()
    packet = demuxer.video(b"\x1c\x01\x00\x00\x28" + b"nalu", 100)
    assert (packet.codec, packet.keyframe, packet.pts) == ("hevc", True, 140)
    packet = demuxer.video(bytes([0x80 | 0x20 | 3]) + b"hvc1" + b"nalu", 100)
    assert (packet.codec, packet.keyframe, packet.pts, packet.payload) == ("hevc", False, 100, b"nalu")


def test_negative_composition_offsets_are_signed():
    packet = flv.FlvDemuxer().video(b"\x27\x01\xff\xff\xd8" + b"nalu", 1000)
    assert packet.pts == 960
    assert flv.message_body(packet)[1][2:5] == b"\xff\xff\xd8"


@pytest.mark.parametrize(
    "kind, body",
    [
        ("video", b"\x22" + bytes(10)),  # Sorenson H.263
        ("video", b"\x14" + bytes(10)),  # VP6
        ("video", bytes([0x90]) + b"av01" + bytes(4)),  # enhanced AV1
        ("video", b"\x17\x02\x00\x00\x00"),  # AVC end of sequence
        ("video", b"\x57\x00"),  # video info/command frame
        ("audio", b"\x2f" + bytes(10)),  # MP3
        ("audio", b"\xaf\x01"),  # AAC with no data
        ("video", b""),
        ("audio", b""),
    ],
)
def test_what_carries_no_supported_media_is_ignored(kind, body):
    assert getattr(flv.FlvDemuxer(), kind)(body, 0) is None


@pytest.mark.parametrize(
    "kind, body",
    [
        ("video", b"\x17\x01\x00"),  # truncated AVC header
        ("video", b"\x17\x07\x00\x00\x00"),  # unknown AVC packet type
        ("video", b"\x90hvc"),  # truncated enhanced header
        ("audio", b"\xaf"),  # truncated AAC header
        ("audio", b"\xaf\x05\x00"),  # unknown AAC packet type
        ("data", amf0.encode("@setDataFrame") + b"\x02\x00"),  # truncated AMF
        ("data", amf0.encode(1.0)),  # no handler name
    ],
)
def test_malformed_tags_raise_value_error(kind, body):
    with pytest.raises(ValueError):
        getattr(flv.FlvDemuxer(), kind)(body, 0)


def test_other_script_data_is_relayed_but_not_as_configuration():
    body = amf0.encode("onTextData", {"text": "hi"})
    packet = flv.FlvDemuxer().data(body, 500)
    assert (packet.kind, packet.config, packet.dts, packet.payload) == (TrackKind.DATA, False, 500, body)
    assert flv.message_body(packet) == (MessageType.DATA_AMF0, body)


def test_aggregate_messages_split_into_tags_with_rebased_timestamps():
    def tag(type_id: int, timestamp: int, body: bytes) -> bytes:
        header = bytes([type_id]) + len(body).to_bytes(3, "big") + (timestamp & 0xFFFFFF).to_bytes(3, "big")
        header += bytes([timestamp >> 24]) + bytes(3)
        return header + body + (11 + len(body)).to_bytes(4, "big")

    payload = tag(9, 5000, b"\x17\x01\x00\x00\x00v") + tag(8, 5020, b"\xaf\x01a")
    assert flv.split_aggregate(payload, 100) == [(9, 100, b"\x17\x01\x00\x00\x00v"), (8, 120, b"\xaf\x01a")]
    with pytest.raises(ValueError):
        flv.split_aggregate(payload[:-3], 100)


def test_packets_without_an_flv_form_are_skipped():
    assert flv.message_body(MediaPacket(TrackKind.AUDIO, "opus", 0, 0, b"x")) is None
    assert flv.message_body(MediaPacket(TrackKind.VIDEO, "vp8", 0, 0, b"x")) is None


def metadata(**properties) -> MediaPacket:
    return MediaPacket(TrackKind.DATA, "amf0", 0, 0, amf0.encode("onMetaData", amf0.EcmaArray(properties)), config=True)


def test_onmetadata_announces_the_tracks_the_publisher_sends():
    (recorded,) = [packet for packet in recorded_packets() if packet.kind is TrackKind.DATA]
    assert flv.announced_tracks(recorded) == (True, True)  # ffmpeg: H.264 (7) and AAC (10)
    assert flv.announced_tracks(metadata(audiocodecid=10.0)) == (False, True)
    assert flv.announced_tracks(metadata(videocodecid=float(int.from_bytes(b"hvc1", "big")))) == (True, False)
    assert flv.announced_tracks(metadata(videocodecid="avc1", audiocodecid="mp4a")) == (True, True)
    # MP3 audio is dropped by the engine: not waited for.
    assert flv.announced_tracks(metadata(videocodecid=7.0, audiocodecid=2.0)) == (True, False)
    # Nothing said about codecs, or not metadata at all: nothing known.
    assert flv.announced_tracks(metadata(width=320.0)) is None
    assert flv.announced_tracks(MediaPacket(TrackKind.DATA, "amf0", 0, 0, amf0.encode("onCuePoint", {}))) is None
