"""The WebRTC transcodes with real codecs (libvpx, libopus, FFmpeg's AAC, libx264): what comes out
decodes as what went in; and Annex B from a real encoder becomes AVCC packets with a configuration."""

from __future__ import annotations

import fractions

import av
import numpy

from media_engine.codecs.aac import parse_audio_specific_config
from media_engine.codecs.h264 import parse_avc_config
from media_engine.webrtc.h264 import split_avcc
from media_engine.webrtc.ingest import H264Packetizer
from media_engine.webrtc.transcode import AacToOpus, OpusToAac, Vp8ToH264


def encoded_video(codec: str, count: int = 30, size=(320, 240)) -> list[bytes]:
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height = size
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = fractions.Fraction(1, 25)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"} if codec == "libx264" else {}
    out = []
    for index in range(count):
        picture = numpy.full((size[1], size[0], 3), index * 8 % 256, dtype=numpy.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        out += [bytes(packet) for packet in encoder.encode(frame)]
    return out + [bytes(packet) for packet in encoder.encode(None)]


def encoded_audio(codec: str, seconds: float = 1.0) -> tuple[list[bytes], bytes]:
    encoder = av.CodecContext.create(codec, "w")
    encoder.sample_rate, encoder.layout = 48000, "stereo"
    encoder.format = "fltp" if codec == "aac" else "s16"
    encoder.time_base = fractions.Fraction(1, 48000)
    encoder.open()
    size = encoder.frame_size or 960
    out = []
    for index in range(int(48000 * seconds) // size):
        samples = numpy.sin(numpy.arange(index * size, (index + 1) * size) * 2 * numpy.pi * 440 / 48000) * 0.5
        if codec == "aac":
            frame = av.AudioFrame.from_ndarray(
                numpy.stack([samples, samples]).astype("float32"), format="fltp", layout="stereo"
            )
        else:
            pcm = (numpy.stack([samples, samples], axis=1).reshape(1, -1) * 20000).astype("int16")
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48000, index * size
        out += [bytes(packet) for packet in encoder.encode(frame)]
    return out, bytes(encoder.extradata or b"")


def test_h264_annexb_becomes_avcc_with_its_configuration():
    packetizer = H264Packetizer()
    packets = [p for index, data in enumerate(encoded_video("libx264")) for p in packetizer.packets(data, index * 40)]
    config, first = packets[0], packets[1]
    assert config.config and first.keyframe and not first.config
    avc = parse_avc_config(config.payload)
    assert (avc.width, avc.height) == (320, 240)
    decoder = av.CodecContext.create("h264", "r")
    decoder.extradata = config.payload
    frames = [f for p in packets[1:] for f in decoder.decode(av.Packet(p.payload))]
    assert len(frames) >= 25 and (frames[0].width, frames[0].height) == (320, 240)
    assert all(split_avcc(p.payload) for p in packets[1:])


def test_vp8_is_transcoded_to_h264_with_keyframes_by_time():
    converter = Vp8ToH264(keyframe_interval_ms=400)
    out = [item for index, data in enumerate(encoded_video("libvpx")) for item in converter.convert((data, index * 40))]
    packetizer = H264Packetizer()
    packets = [p for data, ts in out for p in packetizer.packets(data, ts)]
    media = [p for p in packets if not p.config]
    assert len(media) >= 25
    keyframes = [p.dts for p in media if p.keyframe]
    assert keyframes[0] == 0 and len(keyframes) >= 3  # every 400 ms of a 1.2 s clip
    assert (parse_avc_config(packetizer.config).width, parse_avc_config(packetizer.config).height) == (320, 240)


def test_opus_becomes_aac_and_aac_becomes_opus():
    opus, _ = encoded_audio("libopus")
    to_aac = OpusToAac()
    aac = [item for index, data in enumerate(opus) for item in to_aac.convert((data, 1000 + index * 20))]
    config = parse_audio_specific_config(to_aac.audio_specific_config)
    assert (config.sample_rate, config.channels) == (48000, 2)
    assert len(aac) >= 40 and abs(aac[0][1] - 1000) <= 30 and [ts for _, ts in aac] == sorted(ts for _, ts in aac)
    decoder = av.CodecContext.create("aac", "r")
    decoder.extradata = to_aac.audio_specific_config
    assert sum(f.samples for payload, _ in aac for f in decoder.decode(av.Packet(payload))) >= 40 * 1024

    aac_in, asc = encoded_audio("aac")
    to_opus = AacToOpus(asc)
    packets = [item for index, data in enumerate(aac_in) for item in to_opus.convert((data, index * 21))]
    assert len(packets) >= 40
    assert all(b - a == 960 for (_, a), (_, b) in zip(packets, packets[1:], strict=False))
    decoder = av.CodecContext.create("libopus", "r")
    assert sum(f.samples for payload, _ in packets for f in decoder.decode(av.Packet(payload))) >= 40 * 960
