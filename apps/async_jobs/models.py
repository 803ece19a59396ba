"""The Job row: one long API call run by a worker (method, request, state, result or error, times),
and the state changes every process makes to it.

API servers, workers and the engine all change jobs: every change is one conditional UPDATE
("from these states only"), so two of them racing (a deadline and a success) cannot both win.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db import models
from django.utils import timezone

from apps.async_jobs.choices import FINISHED_STATES, UNFINISHED_STATES, JobState
from apps.async_jobs.redaction import redact, redact_text


class Job(models.Model):
    id = models.UUIDField("id", primary_key=True, default=uuid.uuid4, editable=False)
    method = models.CharField("method", max_length=200, db_index=True, help_text="The API method, e.g. vod/startup.")
    request = models.JSONField("request", default=dict, blank=True, help_text="The call's body.")
    state = models.CharField("state", max_length=10, choices=JobState.choices, default=JobState.PENDING)
    result = models.JSONField("result", null=True, blank=True)
    error = models.TextField("error", blank=True)
    error_status = models.PositiveSmallIntegerField(
        "error status", null=True, blank=True, help_text="The HTTP status the call answers with, e.g. 404."
    )
    timeout_seconds = models.FloatField("timeout (s)", help_text="Cancelled when not done this long after creation.")
    deadline = models.DateTimeField("deadline")
    handle = models.JSONField(
        "started", default=dict, blank=True, help_text="What the job started (e.g. a pull), stopped if it is cancelled."
    )
    watch = models.CharField(
        "waits for",
        max_length=100,
        blank=True,
        db_index=True,
        help_text="The event key (e.g. pull:12) whose changes may finish this running job.",
    )
    created_at = models.DateTimeField("created", default=timezone.now, db_index=True)
    started_at = models.DateTimeField("started", null=True, blank=True)
    finished_at = models.DateTimeField("finished", null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "deadline"], name="async_jobs_job_state_deadline")]

    def __str__(self) -> str:
        return f"{self.method} {self.id} ({self.state})"

    @classmethod
    def new(cls, method: str, request: dict, timeout_seconds: float) -> Job:
        now = timezone.now()
        return cls.objects.create(
            method=method,
            request=request,
            timeout_seconds=timeout_seconds,
            created_at=now,
            deadline=now + timedelta(seconds=timeout_seconds),
        )

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def is_overdue(self) -> bool:
        return not self.is_finished and timezone.now() >= self.deadline

    @property
    def public_request(self):
        """The request as shown to clients and in the admin: no credentials."""
        return redact(self.request)

    @property
    def public_error(self) -> str:
        return redact_text(self.error)

    def _change(self, from_states: list[str], **fields) -> bool:
        """Apply ``fields`` if the job is still in one of ``from_states`` (atomic across processes)."""
        changed = type(self).objects.filter(pk=self.pk, state__in=from_states).update(**fields)
        self.refresh_from_db()
        return bool(changed)

    def mark_running(self) -> bool:
        """A worker took the pending job."""
        return self._change([JobState.PENDING], state=JobState.RUNNING, started_at=timezone.now())

    def mark_waiting(self, handle: dict, watch: str) -> bool:
        """The job started something (``handle``) and waits for events on ``watch`` to be done."""
        return self._change([JobState.RUNNING], handle=handle, watch=watch)

    def mark_done(self, result) -> bool:
        return self._change(UNFINISHED_STATES, state=JobState.DONE, result=result, finished_at=timezone.now())

    def mark_failed(self, status: int, message: str) -> bool:
        return self._change(
            UNFINISHED_STATES,
            state=JobState.FAILED,
            error_status=status,
            error=message[:4000],
            finished_at=timezone.now(),
        )

    def mark_cancelled(self, reason: str) -> bool:
        return self._change(
            UNFINISHED_STATES, state=JobState.CANCELLED, error=reason[:4000], finished_at=timezone.now()
        )
