"""The fragmented MP4 writer judged by ffprobe on a real H.264/AAC clip; the ID3v2.4 and emsg layouts."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from media_engine.hls import fmp4
from media_engine.hls.filesource import read_packets
from media_engine.hls.fmp4 import (
    AAC_FRAME_SAMPLES,
    ID3_EMSG_SCHEME,
    NON_SYNC_SAMPLE_FLAGS,
    SYNC_SAMPLE_FLAGS,
    AudioTrack,
    Sample,
    TrackFragment,
    VideoTrack,
    emsg_box,
    id3_frame,
    id3_priv_frame,
    id3_tag,
    id3_text_frame,
    id3_txxx_frame,
    init_segment,
    media_fragment,
    syncsafe,
)
from media_engine.packets import MediaPacket, TrackKind

VIDEO_ID, AUDIO_ID = 1, 2


def walk(data: bytes) -> list[tuple[bytes, bytes]]:
    """The boxes of ``data``: (type, payload) pairs."""
    found = []
    position = 0
    while position < len(data):
        size, kind = struct.unpack_from(">I4s", data, position)
        assert size >= 8 and position + size <= len(data), (kind, size)
        found.append((kind, data[position + 8 : position + size]))
        position += size
    return found


def child(payload: bytes, *path: bytes, skip: int = 0) -> bytes:
    """The payload of the first box found along ``path`` (``skip`` bytes before the children of the first)."""
    boxes = walk(payload[skip:])
    for index, kind in enumerate(path):
        payload = next(body for name, body in boxes if name == kind)
        if index + 1 < len(path):
            boxes = walk(payload)
    return payload


def ffprobe(path: Path) -> dict:
    assert shutil.which("ffprobe"), "ffprobe (Debian's ffmpeg package) is required"
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
            "-count_frames",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    return json.loads(result.stdout)


class Clip:
    """A real clip's packets as fMP4 tracks and per-GOP fragments (exact durations)."""

    def __init__(self, packets: list[MediaPacket]) -> None:
        configs = {p.kind: p.payload for p in packets if p.config}
        self.video = VideoTrack.from_avc_record(VIDEO_ID, configs[TrackKind.VIDEO])
        self.audio = AudioTrack.from_audio_specific_config(AUDIO_ID, configs[TrackKind.AUDIO])
        self.video_packets = [p for p in packets if p.kind is TrackKind.VIDEO and not p.config]
        self.audio_packets = [p for p in packets if p.kind is TrackKind.AUDIO and not p.config]
        self.init = init_segment([self.video, self.audio])

    def fragments(self) -> list[tuple[TrackFragment, TrackFragment]]:
        """One fragment per GOP: the video of the GOP and the audio frames that start within it."""
        video = self.video_packets
        starts = [i for i, p in enumerate(video) if p.keyframe] + [len(video)]
        frame_ms = video[1].dts - video[0].dts
        result = []
        audio_index = 0
        for first, end in zip(starts, starts[1:], strict=False):
            gop = video[first:end]
            samples = [
                Sample(
                    p.payload,
                    ((video[first + i + 1].dts if first + i + 1 < len(video) else p.dts + frame_ms) - p.dts) * 90,
                    p.keyframe,
                    (p.pts - p.dts) * 90,
                )
                for i, p in enumerate(gop)
            ]
            limit = video[end].dts if end < len(video) else float("inf")
            audio = []
            audio_start = audio_index
            while audio_index < len(self.audio_packets) and self.audio_packets[audio_index].dts < limit:
                audio.append(Sample(self.audio_packets[audio_index].payload, AAC_FRAME_SAMPLES))
                audio_index += 1
            first_audio = round(self.audio_packets[0].dts * self.audio.sample_rate / 1000)
            result.append(
                (
                    TrackFragment(VIDEO_ID, gop[0].dts * 90, samples),
                    TrackFragment(AUDIO_ID, first_audio + audio_start * AAC_FRAME_SAMPLES, audio),
                )
            )
        return result


@pytest.fixture(scope="module")
def clip(av_flv: Path) -> Clip:
    return Clip(read_packets(av_flv))


def test_init_and_fragments_decode(clip: Clip, tmp_path: Path) -> None:
    fragments = clip.fragments()
    assert len(fragments) == 5  # 10 s, GOP 2 s
    path = tmp_path / "all.mp4"
    path.write_bytes(clip.init + b"".join(media_fragment(n + 1, pair) for n, pair in enumerate(fragments)))
    info = ffprobe(path)
    streams = {s["codec_type"]: s for s in info["streams"]}
    video, audio = streams["video"], streams["audio"]
    assert video["codec_name"] == "h264" and (video["width"], video["height"]) == (640, 360)
    assert audio["codec_name"] == "aac" and int(audio["sample_rate"]) == 44100 and audio["channels"] == 2
    assert int(video["nb_read_frames"]) == len(clip.video_packets) == 250
    assert int(audio["nb_read_frames"]) == len(clip.audio_packets)
    assert video["time_base"] == "1/90000" and audio["time_base"] == "1/44100"
    assert abs(float(video["duration"]) - 10.0) < 0.040  # within a frame
    # ffprobe's durations run from 0 to the end of the last sample; the audio starts at its first tfdt.
    audio_end = round(clip.audio_packets[0].dts * 44.1) / 44100 + len(clip.audio_packets) * 1024 / 44100
    assert abs(float(audio["duration"]) - audio_end) < 1e-5
    assert "mp4" in info["format"]["format_name"]


def test_one_fragment_after_the_init_segment(clip: Clip, tmp_path: Path) -> None:
    video, audio = clip.fragments()[2]  # the third GOP: 4 s to 6 s
    path = tmp_path / "one.mp4"
    path.write_bytes(clip.init + media_fragment(3, [video, audio]))
    streams = {s["codec_type"]: s for s in ffprobe(path)["streams"]}
    assert int(streams["video"]["nb_read_frames"]) == len(video.samples) == 50
    assert int(streams["audio"]["nb_read_frames"]) == len(audio.samples)
    assert abs(float(streams["video"]["start_time"]) - 4.0) <= 0.2  # first PTS: 4 s plus the B-frame delay
    assert abs(float(streams["audio"]["start_time"]) - audio.base_decode_time / 44100) < 1e-6


def test_init_segment_layout(clip: Clip) -> None:
    boxes = walk(clip.init)
    assert [kind for kind, _ in boxes] == [b"ftyp", b"moov"]
    assert boxes[0][1][:4] == b"iso6" and b"cmfc" in boxes[0][1]
    moov = boxes[1][1]
    assert [kind for kind, _ in walk(moov)] == [b"mvhd", b"trak", b"trak", b"mvex"]
    video_trak, audio_trak = [body for kind, body in walk(moov) if kind == b"trak"]
    tkhd = child(video_trak, b"tkhd")
    assert struct.unpack_from(">I", tkhd, 12)[0] == VIDEO_ID
    assert struct.unpack_from(">II", tkhd, 76) == (640 << 16, 360 << 16)
    mdhd = child(video_trak, b"mdia", b"mdhd")
    assert struct.unpack_from(">I", mdhd, 12)[0] == 90000
    stsd = child(video_trak, b"mdia", b"minf", b"stbl", b"stsd")
    avc1 = child(stsd, b"avc1", skip=8)
    assert struct.unpack_from(">HH", avc1, 24) == (640, 360)
    assert child(avc1, b"avcC", skip=78) == clip.video.avc_record
    assert child(audio_trak, b"mdia", b"hdlr")[8:12] == b"soun"
    mp4a = child(child(audio_trak, b"mdia", b"minf", b"stbl", b"stsd"), b"mp4a", skip=8)
    assert struct.unpack_from(">HH", mp4a, 16) == (2, 16)  # channels, sample size
    assert struct.unpack_from(">I", mp4a, 24)[0] == 44100 << 16
    esds = child(mp4a, b"esds", skip=28)
    assert esds.endswith(
        b"\x05" + bytes([len(clip.audio.audio_specific_config)]) + clip.audio.audio_specific_config + b"\x06\x01\x02"
    )
    trex = [body for kind, body in walk(child(moov, b"mvex")) if kind == b"trex"]
    assert [struct.unpack_from(">II", body, 4) for body in trex] == [(VIDEO_ID, 1), (AUDIO_ID, 1)]
    assert clip.video.codec_string == "avc1.64001e" and clip.audio.codec_string == "mp4a.40.2"


def test_fragment_layout_points_at_its_samples() -> None:
    video = TrackFragment(VIDEO_ID, 1 << 40, [Sample(b"key", 3600, True, 7200), Sample(b"delta", 3600, False, -3600)])
    audio = TrackFragment(AUDIO_ID, 5, [Sample(b"aac", 1024)])
    fragment = media_fragment(42, [video, audio, TrackFragment(3, 0, [])])
    (moof_kind, moof), (mdat_kind, mdat) = walk(fragment)
    assert (moof_kind, mdat_kind) == (b"moof", b"mdat") and mdat == b"keydeltaaac"
    assert struct.unpack(">II", child(moof, b"mfhd")) == (0, 42)
    trafs = [body for kind, body in walk(moof) if kind == b"traf"]
    assert len(trafs) == 2  # the track without samples is left out
    for traf, expected_id, expected_time, data in ((trafs[0], 1, 1 << 40, b"key"), (trafs[1], 2, 5, b"aac")):
        assert struct.unpack(">II", child(traf, b"tfhd")) == (0x020000, expected_id)
        assert struct.unpack(">IQ", child(traf, b"tfdt")) == (1 << 24, expected_time)  # version 1: 64 bits
        trun = child(traf, b"trun")
        version_flags, count, offset = struct.unpack_from(">IIi", trun)
        assert version_flags == (1 << 24) | 0xF01
        assert fragment[offset : offset + len(data)] == data  # data_offset counts from the moof
    trun = child(trafs[0], b"trun")
    assert struct.unpack_from(">IIIiIIIi", trun, 12) == (
        3600,
        3,
        SYNC_SAMPLE_FLAGS,
        7200,
        3600,
        5,
        NON_SYNC_SAMPLE_FLAGS,
        -3600,
    )
    with pytest.raises(ValueError):
        media_fragment(1, [TrackFragment(1, 0, [])])
    with pytest.raises(ValueError):
        init_segment([])


def test_descriptor_sizes_use_the_expandable_form() -> None:
    assert fmp4._descriptor(0x05, b"x" * 5)[:2] == b"\x05\x05"
    assert fmp4._descriptor(0x05, b"x" * 200)[:3] == bytes([0x05, 0x81, 0x48])  # 200 = 1 * 128 + 72


def test_syncsafe_integers() -> None:
    assert syncsafe(0) == b"\x00\x00\x00\x00"
    assert syncsafe(127) == b"\x00\x00\x00\x7f"
    assert syncsafe(128) == b"\x00\x00\x01\x00"
    assert syncsafe(200) == b"\x00\x00\x01\x48"
    assert syncsafe((1 << 28) - 1) == b"\x7f\x7f\x7f\x7f"
    with pytest.raises(ValueError):
        syncsafe(1 << 28)


def _read_syncsafe(data: bytes) -> int:
    assert all(byte < 0x80 for byte in data)
    return (data[0] << 21) | (data[1] << 14) | (data[2] << 7) | data[3]


def test_id3v24_tag_layout() -> None:
    frames = [
        id3_txxx_frame("AirenSoft", "OvenMediaEngine"),
        id3_text_frame("TIT2", "OvenMediaEngine 123 é"),
        id3_priv_frame("com.example.owner", b"\x00\xff" * 100),
    ]
    tag = id3_tag(frames)
    assert tag[:3] == b"ID3" and tag[3:5] == b"\x04\x00" and tag[5] == 0  # v2.4.0, no flags
    assert _read_syncsafe(tag[6:10]) == len(tag) - 10
    position = 10
    parsed = []
    while position < len(tag):
        frame_id = tag[position : position + 4].decode()
        size = _read_syncsafe(tag[position + 4 : position + 8])
        assert tag[position + 8 : position + 10] == b"\x00\x00"
        parsed.append((frame_id, tag[position + 10 : position + 10 + size]))
        position += 10 + size
    assert position == len(tag)
    assert parsed[0] == ("TXXX", b"\x03AirenSoft\x00OvenMediaEngine")
    assert parsed[1] == ("TIT2", b"\x03" + "OvenMediaEngine 123 é".encode())
    assert parsed[2] == ("PRIV", b"com.example.owner\x00" + b"\x00\xff" * 100)
    assert len(parsed[2][1]) > 127  # a size that needs more than one syncsafe byte
    for bad in (
        lambda: id3_text_frame("TXXX", "x"),
        lambda: id3_text_frame("COMM", "x"),
        lambda: id3_frame("tit2", b""),
    ):
        with pytest.raises(ValueError):
            bad()


def test_emsg_version_1_fields() -> None:
    message = id3_tag([id3_text_frame("TIT2", "hello")])
    box = emsg_box(message, timescale=90000, presentation_time=(1 << 33) + 5, event_id=7, duration=900)
    [(kind, body)] = walk(box)
    assert kind == b"emsg"
    assert body[:4] == b"\x01\x00\x00\x00"  # version 1, flags 0
    assert struct.unpack_from(">IQII", body, 4) == (90000, (1 << 33) + 5, 900, 7)
    scheme, value, data = body[24:].split(b"\x00", 2)
    assert scheme.decode() == ID3_EMSG_SCHEME == "https://aomedia.org/emsg/ID3"
    assert value == b"" and data == message
    unknown = emsg_box(b"", timescale=1000, presentation_time=0, event_id=1)
    assert struct.unpack_from(">I", unknown, 8 + 4 + 12)[0] == 0xFFFFFFFF  # unknown duration


def test_fragments_with_emsg_still_decode(clip: Clip, tmp_path: Path) -> None:
    fragments = clip.fragments()
    body = b""
    for number, (video, audio) in enumerate(fragments, start=1):
        tag = id3_tag([id3_txxx_frame("number", str(number)), id3_priv_frame("owner", b"\x01\x02")])
        body += emsg_box(tag, timescale=90000, presentation_time=video.base_decode_time, event_id=number)
        body += media_fragment(number, [video, audio])
    path = tmp_path / "emsg.mp4"
    path.write_bytes(clip.init + body)
    streams = {s["codec_type"]: s for s in ffprobe(path)["streams"]}
    assert int(streams["video"]["nb_read_frames"]) == len(clip.video_packets)
    assert int(streams["audio"]["nb_read_frames"]) == len(clip.audio_packets)
