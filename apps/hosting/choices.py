"""Named choices and OME defaults of the hosting app."""

from django.db import models

from media_engine.names import name_pattern


class ApplicationType(models.TextChoices):
    LIVE = "live", "Live"


# OME's GET /v1/vhosts/{vhost} reports the vhost's "distribution"; OME's own default.
DEFAULT_DISTRIBUTION = "ovenServer"

# Names of vhosts, apps and output profiles end up in URLs (/{app}/{stream}) and file paths: the
# stream name rule of the engine (media_engine.names), at most 100 characters.
NAME_PATTERN = name_pattern(100)
# Ids of record/push/dump tasks end up in file names (info files, folders): the same rule, at most 200.
TASK_ID_PATTERN = name_pattern(200)
# Bitrates beyond these are no real encode (and overflow the encoder).
MAX_VIDEO_BITRATE = 500_000_000
MAX_AUDIO_BITRATE = 2_000_000

# What OME configures when a create-application request leaves these out (003_*.txt).
DEFAULT_PROVIDERS = {"ovt": {}, "rtmp": {}, "rtspPull": {}, "srt": {}, "webrtc": {}}
DEFAULT_PUBLISHERS = {"llhls": {}, "ovt": {}, "webrtc": {}}
DEFAULT_OUTPUT_PROFILE_ENCODES = {
    "audios": [
        {
            "name": "opus",
            "codec": "opus",
            "samplerate": 48000,
            "bitrate": 128000,
            "channel": 2,
            "bypassIfMatch": {"codec": "eq"},
        },
        {
            "name": "aac",
            "codec": "aac",
            "samplerate": 48000,
            "bitrate": 128000,
            "channel": 2,
            "bypassIfMatch": {"codec": "eq"},
        },
    ],
    "videos": [{"name": "bypass_video", "bypass": True}],
}
# The spec's example application shows this profile as "bypass" (and so does OME's code);
# the application shipped on first start uses the name of OME's default Server.xml instead.
DEFAULT_OUTPUT_PROFILE_NAME = "bypass"
SHIPPED_OUTPUT_PROFILE_NAME = "bypass_stream"
ORIGIN_STREAM_NAME_MACRO = "${OriginStreamName}"
