"""The abstract media job: a task on one stream of an application, with OME's state machine.

Every kind (record, push, pull, HLS dump, transcodes, mixer, multi-recorder) inherits it; the API,
the admin and the Celery tasks change a job's state only through the transitions below. Each is one
conditional UPDATE from the states it may leave (atomic across processes, as in
``apps.async_jobs.models.Job._change``), returns whether it applied, and sends ``job_state_changed``.

The lease: a worker that claims a job writes a fresh ``lease_token`` and renews ``heartbeat_at``
every few seconds. Every write a worker makes (transitions, progress, file rows) is fenced by the
token it holds, so a worker whose job was taken over (a redelivered task, a lease that ran out)
changes nothing and stops at its next stop check.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.jobs.choices import ACTIVE_STATES, LEASED_STATES, RUNNING_STATES, JobState
from apps.jobs.signals import job_state_changed

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker holds the job now: this one must stop without writing anything more."""


class StreamJob(models.Model):
    # What the runner finds before it runs the media (apps.jobs.runner): records, pushes, dumps
    # and transcodes read a live stream and wait (reserved) for it; pulls and mixers publish a
    # stream of their own into an engine node that takes new streams; a multi-recorder needs neither.
    needs_live_stream = True
    needs_engine_node = False

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
    lease_token = models.CharField(
        "lease", max_length=32, blank=True, editable=False, help_text="Names the worker that holds the job."
    )
    heartbeat_at = models.DateTimeField(
        "last heartbeat", null=True, blank=True, help_text="Refreshed every few seconds while a worker runs the job."
    )

    # The lease token this process holds (set by ``claim``; never read back from the row).
    held_lease = ""

    class Meta:
        abstract = True
        ordering = ["created_at"]

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def stop_requested(self) -> bool:
        return self.state in (JobState.STOPPING, JobState.STOPPED)

    def owned_files(self) -> list[str]:
        """The media files this job wrote (paths as stored), which deleting it "with its files"
        removes; kinds that keep no file rows own none."""
        return []

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

    # -- transitions ----------------------------------------------------------------------------

    def _change(self, from_states: list[str], *, fenced: bool = False, where: Q | None = None, **fields) -> bool:
        """Apply ``fields`` if the job is still in one of ``from_states`` (and, ``fenced``, still
        held by this process's lease; ``where``, matches more conditions): one UPDATE."""
        rows = type(self).objects.filter(pk=self.pk, state__in=from_states)
        if fenced:
            rows = rows.filter(lease_token=self.held_lease) if self.held_lease else rows.none()
        if where is not None:
            rows = rows.filter(where)
        changed = bool(rows.update(**fields))
        self.refresh_from_db()
        if changed:
            for receiver, result in job_state_changed.send_robust(type(self), job=self, fields=set(fields)):
                if isinstance(result, Exception):
                    logger.error("%s: receiver %s of job_state_changed failed: %r", self, receiver, result)
        return changed

    def held(self) -> models.QuerySet:
        """This row, if this process still holds its lease: the worker's writes go through it."""
        rows = type(self).objects.filter(pk=self.pk)
        return rows.filter(lease_token=self.held_lease) if self.held_lease else rows.none()

    def lease_expiry(self) -> datetime:
        """Heartbeats older than this belong to a worker presumed dead."""
        return timezone.now() - timedelta(seconds=settings.JOB_LEASE_SECONDS)

    # The worker's transitions (fenced by its lease).

    def claim(self, task_id: str = "") -> bool:
        """Take the job for a worker: a ready job, or a running one whose worker's lease ran out.
        Never one whose lease is alive, even for a delivery of the same task (the broker may deliver
        it twice while the first delivery still runs)."""
        token = uuid.uuid4().hex
        stale = Q(heartbeat_at__lt=self.lease_expiry()) | Q(heartbeat_at__isnull=True)
        claimed = self._change(
            [JobState.READY, *RUNNING_STATES],
            where=Q(state=JobState.READY) | stale,
            state=JobState.STARTED,
            heartbeat_at=timezone.now(),
            celery_task_id=task_id,
            lease_token=token,
        )
        if claimed:
            self.held_lease = token
        return claimed

    def beat(self) -> bool:
        """The running worker renews its lease (without touching anything else in the row); False
        when it no longer holds it."""
        self.heartbeat_at = timezone.now()
        return bool(self.held().update(heartbeat_at=self.heartbeat_at))

    def mark_started(self, **fields) -> bool:
        """The media runs: the first start sets the start time."""
        now = timezone.now()
        return self._change(
            RUNNING_STATES,
            fenced=True,
            state=JobState.STARTED,
            started_at=Coalesce(F("started_at"), Value(now, output_field=models.DateTimeField())),
            heartbeat_at=now,
            error="",
            **fields,
        )

    def mark_connected(self, **fields) -> bool:
        """The media flows (again): the first time sets the start time, a reconnection after
        retrying starts the next sequence. ``fields`` (e.g. counters of the connection) are reset
        only then; False (and nothing written) when it was already flowing."""
        if self._change(
            RUNNING_STATES,
            fenced=True,
            where=Q(started_at__isnull=True),
            state=JobState.STARTED,
            started_at=timezone.now(),
            error="",
            **fields,
        ):
            return True
        return self._change(
            [JobState.RETRYING], fenced=True, state=JobState.STARTED, sequence=F("sequence") + 1, error="", **fields
        )

    def mark_retrying(self, error: str) -> bool:
        return self._change(RUNNING_STATES, fenced=True, state=JobState.RETRYING, error=error[:2000])

    def mark_waiting(self, reason: str = "") -> bool:
        """The stream ended (or could not be read): wait (reserved) for it to come back. The worker
        lets go of the job; the stream's return queues it again."""
        return self._change(RUNNING_STATES, fenced=True, state=JobState.READY, error=reason[:2000], lease_token="")

    def mark_stopped(self, reason: str = "", requested_only: bool = False) -> bool:
        """The worker is done with the job for good (``requested_only``: only if a stop was asked)."""
        from_states = [JobState.STOPPING] if requested_only else LEASED_STATES
        fields = {"error": reason[:2000]} if reason else {}
        return self._change(
            from_states, fenced=True, state=JobState.STOPPED, finished_at=timezone.now(), lease_token="", **fields
        )

    def mark_error(self, message: str) -> bool:
        return self._change(
            LEASED_STATES,
            fenced=True,
            state=JobState.ERROR,
            error=message[:2000],
            finished_at=timezone.now(),
            lease_token="",
        )

    # Everyone else's transitions (the API, the admin, the recovery pass): not fenced.

    def request_stop(self) -> bool:
        """Stopping until the worker has finished; a job that is not running just stops. False when
        it was already stopping or finished."""
        for _ in range(3):  # a worker's claim or end may move the job between the two updates
            if self._change(RUNNING_STATES, state=JobState.STOPPING):
                return True
            if self._change(
                [JobState.READY, JobState.ERROR], state=JobState.STOPPED, finished_at=timezone.now(), lease_token=""
            ):
                return True
            if self.state in (JobState.STOPPING, JobState.STOPPED):
                return False
        return False

    def reserve(self) -> bool:
        """Ready again (e.g. retried from the admin after an error): starts when the stream is live."""
        return self._change(
            [JobState.READY, JobState.ERROR, JobState.STOPPED],
            state=JobState.READY,
            error="",
            finished_at=None,
            lease_token="",
        )

    def expire_lease(self, reason: str) -> bool:
        """Its worker's lease ran out (killed, machine gone): a running job waits to be claimed
        again, a stopping one has nothing left to run and stops."""
        stale = Q(heartbeat_at__lt=self.lease_expiry()) | Q(heartbeat_at__isnull=True)
        if self._change(RUNNING_STATES, where=stale, state=JobState.READY, error=reason[:2000], lease_token=""):
            return True
        return self._change(
            [JobState.STOPPING], where=stale, state=JobState.STOPPED, finished_at=timezone.now(), lease_token=""
        )
