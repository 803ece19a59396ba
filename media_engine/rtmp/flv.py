"""FLV tag bodies (RTMP audio/video/data message payloads) to and from `MediaPacket`.

Supported: H.264 (AVCPacketType 0/1/2 with composition time), AAC (AACPacketType 0/1), HEVC
(enhanced RTMP ``hvc1``, and the legacy codec id 12 some encoders use) and AMF0 script data
(``@setDataFrame``/``onMetaData``). Other codecs are logged once and ignored. Malformed bodies
raise ``ValueError``.
"""

from __future__ import annotations

import logging
import struct

from media_engine.packets import MediaPacket, TrackKind
from media_engine.rtmp import amf0
from media_engine.rtmp.chunks import MessageType

logger = logging.getLogger(__name__)

# FLV video codec ids and frame types.
VIDEO_CODEC_AVC = 7
VIDEO_CODEC_HEVC_LEGACY = 12
FRAME_KEY = 1
FRAME_INTER = 2
FRAME_COMMAND = 5
AVC_SEQUENCE_HEADER = 0
AVC_NALU = 1
AVC_END_OF_SEQUENCE = 2

# Enhanced RTMP (veovera enhanced-rtmp v1) video packet types.
EX_SEQUENCE_START = 0
EX_CODED_FRAMES = 1
EX_SEQUENCE_END = 2
EX_CODED_FRAMES_X = 3
FOURCC_HEVC = b"hvc1"

# FLV audio formats.
SOUND_FORMAT_AAC = 10
AAC_SEQUENCE_HEADER = 0
AAC_RAW = 1
AAC_TAG_BYTE = 0xAF  # AAC, "44 kHz", 16-bit, stereo: the fixed values FLV mandates for AAC

VIDEO_CODEC_NAMES = {
    2: "sorenson-h263",
    3: "screen-video",
    4: "vp6",
    5: "vp6-alpha",
    6: "screen-video-2",
    VIDEO_CODEC_AVC: "h264",
    VIDEO_CODEC_HEVC_LEGACY: "hevc",
}
AUDIO_FORMAT_NAMES = {
    0: "pcm",
    1: "adpcm",
    2: "mp3",
    3: "pcm-le",
    4: "nellymoser-16k",
    5: "nellymoser-8k",
    6: "nellymoser",
    7: "g711-alaw",
    8: "g711-mulaw",
    9: "ex-audio",
    SOUND_FORMAT_AAC: "aac",
    11: "speex",
    14: "mp3-8k",
}

_SET_DATA_FRAME = amf0.encode("@setDataFrame")
_TAG_HEADER = struct.Struct(">B3s3sB3s")


def _si24(data: bytes | memoryview, offset: int) -> int:
    value = (data[offset] << 16) | (data[offset + 1] << 8) | data[offset + 2]
    return value - 0x1000000 if value & 0x800000 else value


def _si24_bytes(value: int) -> bytes:
    return (value & 0xFFFFFF).to_bytes(3, "big")


class FlvDemuxer:
    """Turn one publisher's audio/video/data message bodies into MediaPackets.

    Stateless apart from remembering which unsupported codecs were already reported,
    so a stream of, say, MP3 audio logs one line and not one per frame.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._reported: set[str] = set()

    def _unsupported(self, what: str) -> None:
        if what not in self._reported:
            self._reported.add(what)
            logger.info("%s: ignoring unsupported %s", self.name or "rtmp", what)

    def video(self, body: bytes, timestamp: int) -> MediaPacket | None:
        """The packet of one video message; None for what carries no media (end of sequence...)."""
        if not body:
            return None
        b0 = body[0]
        if b0 & 0x80:
            return self._enhanced_video(body, timestamp)
        frame_type = b0 >> 4
        codec_id = b0 & 0x0F
        if frame_type == FRAME_COMMAND:
            return None
        if codec_id == VIDEO_CODEC_AVC or codec_id == VIDEO_CODEC_HEVC_LEGACY:
            codec = "h264" if codec_id == VIDEO_CODEC_AVC else "hevc"
            if len(body) < 5:
                raise ValueError(f"{codec} video tag shorter than 5 bytes")
            packet_type = body[1]
            if packet_type == AVC_SEQUENCE_HEADER:
                return MediaPacket(TrackKind.VIDEO, codec, timestamp, timestamp, body[5:], False, True)
            if packet_type == AVC_NALU:
                if len(body) == 5:
                    return None
                pts = timestamp + _si24(body, 2)
                return MediaPacket(TrackKind.VIDEO, codec, timestamp, pts, body[5:], frame_type == FRAME_KEY)
            if packet_type == AVC_END_OF_SEQUENCE:
                return None
            raise ValueError(f"unknown AVC packet type {packet_type}")
        self._unsupported("video codec " + VIDEO_CODEC_NAMES.get(codec_id, str(codec_id)))
        return None

    def _enhanced_video(self, body: bytes, timestamp: int) -> MediaPacket | None:
        if len(body) < 5:
            raise ValueError("enhanced RTMP video tag shorter than 5 bytes")
        frame_type = (body[0] >> 4) & 0x07
        packet_type = body[0] & 0x0F
        fourcc = body[1:5]
        if fourcc != FOURCC_HEVC:
            self._unsupported("enhanced RTMP video codec " + fourcc.decode("latin-1"))
            return None
        if frame_type == FRAME_COMMAND:
            return None
        if packet_type == EX_SEQUENCE_START:
            return MediaPacket(TrackKind.VIDEO, "hevc", timestamp, timestamp, body[5:], False, True)
        if packet_type == EX_CODED_FRAMES:
            if len(body) < 8:
                raise ValueError("HEVC coded frames tag shorter than 8 bytes")
            if len(body) == 8:
                return None
            pts = timestamp + _si24(body, 5)
            return MediaPacket(TrackKind.VIDEO, "hevc", timestamp, pts, body[8:], frame_type == FRAME_KEY)
        if packet_type == EX_CODED_FRAMES_X:
            if len(body) == 5:
                return None
            return MediaPacket(TrackKind.VIDEO, "hevc", timestamp, timestamp, body[5:], frame_type == FRAME_KEY)
        return None  # sequence end, metadata, MPEG-2 TS sequence start: nothing to relay

    def audio(self, body: bytes, timestamp: int) -> MediaPacket | None:
        """The packet of one audio message; None for unsupported formats."""
        if not body:
            return None
        sound_format = body[0] >> 4
        if sound_format != SOUND_FORMAT_AAC:
            self._unsupported("audio format " + AUDIO_FORMAT_NAMES.get(sound_format, str(sound_format)))
            return None
        if len(body) < 2:
            raise ValueError("AAC audio tag shorter than 2 bytes")
        packet_type = body[1]
        if packet_type == AAC_SEQUENCE_HEADER:
            return MediaPacket(TrackKind.AUDIO, "aac", timestamp, timestamp, body[2:], False, True)
        if packet_type == AAC_RAW:
            if len(body) == 2:
                return None
            return MediaPacket(TrackKind.AUDIO, "aac", timestamp, timestamp, body[2:])
        raise ValueError(f"unknown AAC packet type {packet_type}")

    def data(self, body: bytes, timestamp: int) -> MediaPacket | None:
        """The packet of one AMF0 data message; ``@setDataFrame`` is stripped from metadata."""
        return script_packet(body, timestamp)


def script_packet(body: bytes, timestamp: int) -> MediaPacket | None:
    """A DATA packet for an AMF0 script message (``config=True`` for ``onMetaData``)."""
    if body.startswith(_SET_DATA_FRAME):
        body = body[len(_SET_DATA_FRAME) :]
    if not body:
        return None
    values = amf0.decode_all(body)  # validates before anything is relayed
    if not values or not isinstance(values[0], str):
        raise ValueError("script data message without a handler name")
    return MediaPacket(TrackKind.DATA, "amf0", timestamp, timestamp, bytes(body), False, values[0] == "onMetaData")


# onMetaData codec ids of the tracks the engine relays: FLV ids, or (enhanced RTMP) FourCCs as
# numbers or strings.
_ANNOUNCED_VIDEO = {VIDEO_CODEC_AVC, VIDEO_CODEC_HEVC_LEGACY, *(int.from_bytes(c, "big") for c in (b"avc1", b"hvc1"))}
_ANNOUNCED_AUDIO = {SOUND_FORMAT_AAC, int.from_bytes(b"mp4a", "big")}


def _codec_id(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and len(value) == 4:
        return int.from_bytes(value.encode("latin-1", "replace"), "big")
    return None


def announced_tracks(packet: MediaPacket) -> tuple[bool, bool] | None:
    """(video, audio): which relayable tracks an ``onMetaData`` packet announces; None when it names
    no codec (then nothing is known). A track in a codec the engine drops counts as not sent."""
    if packet.kind is not TrackKind.DATA or not packet.config:
        return None
    try:
        values = amf0.decode_all(packet.payload)
    except ValueError:
        return None
    properties = values[1] if len(values) > 1 and isinstance(values[1], dict) else None
    if properties is None or not ({"videocodecid", "audiocodecid"} & properties.keys()):
        return None
    video = _codec_id(properties.get("videocodecid")) in _ANNOUNCED_VIDEO
    audio = _codec_id(properties.get("audiocodecid")) in _ANNOUNCED_AUDIO
    return video, audio


def split_aggregate(payload: bytes, timestamp: int) -> list[tuple[int, int, bytes]]:
    """(message type, timestamp, body) of each FLV tag in an Aggregate message.

    Tag timestamps are rebased so that the first tag has the aggregate message's timestamp.
    """
    out: list[tuple[int, int, bytes]] = []
    pos = 0
    base: int | None = None
    n = len(payload)
    while pos < n:
        if pos + 11 > n:
            raise ValueError("truncated FLV tag header in aggregate message")
        tag_type, size_bytes, ts_bytes, ts_ext, _ = _TAG_HEADER.unpack_from(payload, pos)
        size = int.from_bytes(size_bytes, "big")
        tag_ts = int.from_bytes(ts_bytes, "big") | (ts_ext << 24)
        start = pos + 11
        end = start + size
        if end + 4 > n:
            raise ValueError("truncated FLV tag in aggregate message")
        if base is None:
            base = tag_ts
        out.append((tag_type & 0x1F, (timestamp + tag_ts - base) & 0xFFFFFFFF, payload[start:end]))
        pos = end + 4  # previous tag size
    return out


def message_body(packet: MediaPacket) -> tuple[int, bytes] | None:
    """(RTMP message type, FLV tag body) to send ``packet`` to a player; None if it has no FLV form."""
    kind = packet.kind
    if kind is TrackKind.VIDEO:
        if packet.codec == "h264":
            if packet.config:
                header = b"\x17\x00\x00\x00\x00"
            else:
                header = bytes((0x17 if packet.keyframe else 0x27, AVC_NALU)) + _si24_bytes(packet.pts - packet.dts)
            return MessageType.VIDEO, header + packet.payload
        if packet.codec == "hevc":
            frame_type = FRAME_KEY if packet.keyframe or packet.config else FRAME_INTER
            if packet.config:
                header = bytes((0x80 | (frame_type << 4) | EX_SEQUENCE_START,)) + FOURCC_HEVC
            else:
                header = (
                    bytes((0x80 | (frame_type << 4) | EX_CODED_FRAMES,))
                    + FOURCC_HEVC
                    + _si24_bytes(packet.pts - packet.dts)
                )
            return MessageType.VIDEO, header + packet.payload
        return None
    if kind is TrackKind.AUDIO:
        if packet.codec == "aac":
            header = b"\xaf\x00" if packet.config else b"\xaf\x01"
            return MessageType.AUDIO, header + packet.payload
        return None
    if packet.codec == "amf0":
        return MessageType.DATA_AMF0, packet.payload
    return None
