"""Named choices of the streams app."""

from django.db import models


class StreamState(models.TextChoices):
    LIVE = "live", "Live"
    ENDED = "ended", "Ended"


class SourceType(models.TextChoices):
    # Spelled as OME's stream info shows them ("sourceType": "Rtmp").
    RTMP = "Rtmp", "RTMP"
    WEBRTC = "WebRTC", "WebRTC"
    SRT = "Srt", "SRT"
    RTSP_PULL = "RtspPull", "RTSP pull"
    RTMP_PULL = "RtmpPull", "RTMP pull"
    HTTP_PULL = "HttpPull", "HTTP pull"
    MPEGTS = "Mpegts", "MPEG-TS"
    FILE = "File", "File"


# Connection kinds of OME's stats API, plus the RTMP players StreamHub serves.
CONNECTION_KINDS = [
    "dash", "file", "hls", "lldash", "llhls", "mpegtspush", "ovt", "rtmp", "rtmppush", "thumbnail", "webrtc",
]  # fmt: skip
