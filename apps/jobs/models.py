"""The abstract media job: a task on one stream of an application, with OME's state machine.

Record and Push inherit it; the API, the admin and the Celery tasks change a job's state only
through these methods.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.jobs.choices import ACTIVE_STATES, JobState


class StreamJob(models.Model):
    # Records and pushes read a live stream and wait (reserved) for it; a pull creates its stream.
    needs_live_stream = True

    application = models.ForeignKey("hosting.Application", on_delete=models.CASCADE, related_name="%(class)s_jobs")
    stream_name = models.CharField("stream", max_length=255)
    variant_names = models.JSONField("variant names", default=list, blank=True)
    track_ids = models.JSONField("track ids", default=list, blank=True)
    state = models.CharField("state", max_length=10, choices=JobState.choices, default=JobState.READY)
    error = models.TextField("error", blank=True)
    sequence = models.PositiveIntegerField("sequence", default=0)
    created_at = models.DateTimeField("created", default=timezone.now)
    started_at = models.DateTimeField("started", null=True, blank=True)
    finished_at = models.DateTimeField("finished", null=True, blank=True)
    celery_task_id = models.CharField("worker task", max_length=100, blank=True)
    heartbeat_at = models.DateTimeField(
        "last heartbeat", null=True, blank=True, help_text="Refreshed every few seconds while a worker runs the job."
    )

    class Meta:
        abstract = True
        ordering = ["created_at"]

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def stop_requested(self) -> bool:
        return self.state in (JobState.STOPPING, JobState.STOPPED)

    @property
    def has_live_worker(self) -> bool:
        """A worker refreshed this job's lease recently (it is running somewhere right now)."""
        lease = timedelta(seconds=settings.JOB_LEASE_SECONDS)
        return self.heartbeat_at is not None and self.heartbeat_at >= timezone.now() - lease

    def track_kinds(self, stream) -> list[str] | None:
        """The kinds of track ("video", "audio") the job takes from ``stream``: those its ``trackIds``
        (the stream's input track ids) and ``variantNames`` (encode names of the application's
        output profiles) name; None when it names none (every track). ValueError when the names
        match no track, rather than silently taking every one."""
        if not self.track_ids and not self.variant_names:
            return None
        kinds: set[str] = set()
        by_id = {track["id"]: track["kind"] for track in stream.input_tracks or []}
        kinds |= {by_id[track_id] for track_id in self.track_ids if track_id in by_id}
        for profile in self.application.output_profiles.all():
            for key, kind in (("videos", "video"), ("audios", "audio")):
                if any(encode.get("name") in self.variant_names for encode in profile.encodes.get(key, [])):
                    kinds.add(kind)
        if not kinds:
            raise ValueError(
                f"no track of {stream.name} matches trackIds {self.track_ids} / variantNames {self.variant_names}"
            )
        return sorted(kinds)

    def beat(self) -> None:
        """The running worker renews its lease (without touching anything else in the row)."""
        self.heartbeat_at = timezone.now()
        type(self).objects.filter(pk=self.pk).update(heartbeat_at=self.heartbeat_at)

    def mark_started(self, task_id: str = "") -> None:
        self.state = JobState.STARTED
        self.started_at = self.started_at or timezone.now()
        self.celery_task_id = task_id or self.celery_task_id
        self.heartbeat_at = timezone.now()
        self.error = ""
        self.save()

    def mark_retrying(self, error: str) -> None:
        self.state = JobState.RETRYING
        self.error = error[:2000]
        self.save(update_fields=["state", "error"])

    def mark_waiting(self, reason: str = "") -> None:
        """The stream ended (or could not be read): wait (reserved) for it to come back."""
        self.state = JobState.READY
        self.error = reason[:2000]
        self.save(update_fields=["state", "error"])

    def reserve(self) -> None:
        """Ready again (e.g. retried from the admin after an error): starts when the stream is live."""
        self.state = JobState.READY
        self.error = ""
        self.finished_at = None
        self.save()

    def request_stop(self) -> None:
        """Stopping until the worker has finished; a job that is not running just stops."""
        if self.state in (JobState.STARTED, JobState.RETRYING):
            self.state = JobState.STOPPING
        elif self.state in (JobState.READY, JobState.ERROR):
            self.state = JobState.STOPPED
            self.finished_at = timezone.now()
        self.save()

    def mark_stopped(self) -> None:
        self.state = JobState.STOPPED
        self.finished_at = timezone.now()
        self.save()

    def mark_error(self, message: str) -> None:
        self.state = JobState.ERROR
        self.error = message[:2000]
        self.finished_at = timezone.now()
        self.save()
