"""HLS dumps (OME's :startHlsDump): which stream's LL-HLS output goes to which folder, and how far it got."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import models

from apps.jobs.choices import ACTIVE_STATES
from apps.jobs.models import StreamJob
from apps.jobs.paths import UnsafePath, confine_output, media_root


def dump_folder(path: str) -> Path:
    """``path`` as the absolute folder of a dump, or UnsafePath: under the media root and not the root
    itself (a dump writes and rewrites its playlists and segments there, beside nothing else's files),
    or in a folder the operator opened for outputs (``STREAMHUB_EXTRA_OUTPUT_ROOTS``, roots included:
    the spec's example dumps into ``/tmp/``)."""
    folder = confine_output(path)
    if folder == media_root():
        raise UnsafePath(f"{path}: the media root itself; a dump needs a folder of its own")
    return folder


class HlsDump(StreamJob):
    dump_id = models.CharField("id", max_length=200, help_text="The id given in :startHlsDump.")
    output_path = models.CharField("output folder", max_length=1000, help_text="Absolute, under the media root.")
    playlists = models.JSONField(
        "master playlists", default=list, blank=True, help_text="Master playlist file names written to the folder."
    )
    info_file = models.CharField(
        "info file", max_length=1000, blank=True, help_text="Absolute, under the media root; empty: none."
    )
    user_data = models.TextField("user data", blank=True, help_text="Written to the info file.")
    dumped_segments = models.PositiveIntegerField("segments dumped", default=0)
    dumped_bytes = models.BigIntegerField("bytes dumped", default=0)

    class Meta(StreamJob.Meta):
        verbose_name = "HLS dump"
        constraints = [
            models.UniqueConstraint(
                fields=["application", "dump_id"],
                condition=models.Q(state__in=ACTIVE_STATES),
                name="%(app_label)s_%(class)s_unique_active_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.dump_id} ({self.application.path}/{self.stream_name} -> {self.output_path})"

    def clean(self) -> None:
        """The admin's check of what the API checks: the folder is one of the dump's own."""
        super().clean()
        try:
            dump_folder(self.output_path)
        except UnsafePath as error:
            raise ValidationError({"output_path": str(error)}) from error

    @property
    def stream_path(self) -> str:
        """The stream as the info file names it: /vhost/app/stream."""
        return f"/{self.application.virtual_host.name}/{self.application.name}/{self.stream_name}"

    def record_progress(self, segments: int, nbytes: int) -> None:
        self.dumped_segments, self.dumped_bytes = segments, nbytes
        self.held().update(dumped_segments=segments, dumped_bytes=nbytes)

    def complete(self) -> None:
        """The stream ended and the folder holds the whole dump: done, not reserved for the stream's return
        (a second publication would write over the first one's playlist)."""
        self.request_stop()
