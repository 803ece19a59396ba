"""HLS packaging: our MPEG-TS muxer (`mpegts`), the in-memory segmenter and per-registry packager (`segmenter`)."""

from media_engine.hls.segmenter import HlsPackager, HlsSegmenter, Segment

__all__ = ["HlsPackager", "HlsSegmenter", "Segment"]
