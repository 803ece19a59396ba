"""Pull tasks (OME's "Create Stream (Pull)"): which URLs feed a stream of an application, and how that goes."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

from django.db import models

from apps.jobs.choices import ACTIVE_STATES
from apps.jobs.models import StreamJob
from apps.streams.choices import SourceType

# OME's defaults for the optional properties of a pull.
DEFAULT_NO_INPUT_FAILOVER_MS = 3000
DEFAULT_UNUSED_DELETION_MS = 60000
# A file under the media root played as live (WCS /vod/startup): vod-live://name.mp4, vod://name.mp4.
VOD_SCHEMES = ("vod-live", "vod")
# An MPEG-TS listener (WCS /mpegts/startup) that a publisher sends to.
LISTEN_SCHEMES = ("udp", "tcp")


def vod_file_name(uri: str) -> str:
    """The media-root-relative file of a vod-live:// or vod:// URI."""
    return uri.split("://", 1)[1]


class Pull(StreamJob):
    """``stream_name`` is the stream this pull creates; it needs no live stream to start (it makes one)."""

    needs_live_stream = False
    needs_engine_node = True

    urls = models.JSONField("source URLs", help_text="Tried in order; the next one takes over when one fails.")
    source_type = models.CharField("source type", max_length=20, choices=SourceType.choices)
    persistent = models.BooleanField(
        "persistent", default=False, help_text="Kept (and retried) until deleted, even without input or viewers."
    )
    no_input_failover_timeout_ms = models.PositiveIntegerField(
        "no-input failover (ms)", default=DEFAULT_NO_INPUT_FAILOVER_MS, help_text="Silence before the next URL."
    )
    unused_stream_deletion_timeout_ms = models.PositiveIntegerField(
        "unused deletion (ms)",
        default=DEFAULT_UNUSED_DELETION_MS,
        help_text="Time without any viewer before the stream is deleted (0: never). Ignored when persistent.",
    )
    ignore_rtcp_sr_timestamp = models.BooleanField("ignore RTCP SR timestamps", default=False)
    current_url = models.CharField("current URL", max_length=2000, blank=True)
    received_bytes = models.BigIntegerField("bytes received", default=0)
    failovers = models.PositiveIntegerField("failovers", default=0)
    loop = models.BooleanField("loop", default=False, help_text="A file source starts again at its end.")
    media_session_id = models.UUIDField("media session id", default=uuid.uuid4, editable=False)

    class Meta(StreamJob.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["application", "stream_name"],
                condition=models.Q(state__in=ACTIVE_STATES),
                name="%(app_label)s_%(class)s_unique_active_stream",
            )
        ]

    def __str__(self) -> str:
        return f"{self.application.path}/{self.stream_name} <- {', '.join(self.urls)}"

    @property
    def source_scheme(self) -> str:
        return urlsplit(self.urls[0]).scheme.lower() if self.urls else ""

    @property
    def is_vod(self) -> bool:
        return self.source_scheme in VOD_SCHEMES

    @property
    def is_listener(self) -> bool:
        return self.source_scheme in LISTEN_SCHEMES

    def vod_path(self) -> Path:
        """The file a VOD pull plays (confined to the media root; UnsafePath otherwise)."""
        from apps.jobs.paths import confine

        return confine(vod_file_name(self.urls[0]))
