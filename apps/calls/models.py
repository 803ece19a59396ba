"""SIP calls (WCS /call/*): what was asked (callee, SIP account, where the far end's audio goes),
how the call goes (WCS status, far end, codec, duration), and the commands waiting for its worker."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import models
from django.dispatch import Signal
from django.utils import timezone

from apps.calls.choices import ENDED_STATUSES, CallStatus, CommandKind, InjectKind
from apps.jobs.choices import ACTIVE_STATES, JobState
from apps.jobs.models import StreamJob

logger = logging.getLogger(__name__)
DEFAULT_SIP_PORT = 5060
# Sent after a call's status changed (``Call.set_status``); kwargs: call. WCS v3 waiters listen to it.
call_status_changed = Signal()


class Call(StreamJob):
    """A SIP call run as a media job: ``stream_name`` is ``toStream`` (empty when the far end's
    audio only goes to ``rtmpUrl``). The job's state says whether a worker runs it; ``status``
    says how the call goes, as WCS reports it."""

    needs_live_stream = False  # it makes its stream

    @property
    def needs_engine_node(self) -> bool:
        """A call with a ``toStream`` publishes into an engine node that takes new streams."""
        return bool(self.stream_name)

    call_id = models.CharField("call id", max_length=255, help_text="The client's callId.")
    callee = models.CharField("callee", max_length=255)
    visible_name = models.CharField("visible name", max_length=255, blank=True)
    sip_login = models.CharField("SIP login", max_length=255, blank=True)
    sip_authentication_name = models.CharField("SIP authentication name", max_length=255, blank=True)
    # Kept for the worker that registers and answers digest challenges; never shown by the API or admin.
    sip_password = models.CharField("SIP password", max_length=255, blank=True)
    sip_domain = models.CharField("SIP domain", max_length=255)
    sip_outbound_proxy = models.CharField("SIP outbound proxy", max_length=255, blank=True)
    sip_port = models.PositiveIntegerField("SIP port", default=DEFAULT_SIP_PORT)
    sip_register_required = models.BooleanField("register first", default=False)
    has_audio = models.BooleanField("audio", default=True)
    has_video = models.BooleanField("video", default=False)
    rtmp_url = models.CharField(
        "RTMP URL", max_length=2000, blank=True, help_text="Where the far end's audio is pushed (with rtmpStream)."
    )
    rtmp_stream = models.CharField("RTMP stream", max_length=255, blank=True)
    app_key = models.CharField("app key", max_length=255, blank=True)

    status = models.CharField("call status", max_length=20, choices=CallStatus.choices, default=CallStatus.PENDING)
    reason = models.CharField("reason", max_length=500, blank=True, help_text="Why the call ended or failed.")
    far_end = models.CharField("far end", max_length=500, blank=True, help_text="The answering party's URI.")
    codec = models.CharField("codec", max_length=50, blank=True)
    established_at = models.DateTimeField("established", null=True, blank=True)
    ended_at = models.DateTimeField("ended", null=True, blank=True)
    published_bytes = models.BigIntegerField("bytes published", default=0)
    injecting = models.CharField("injecting", max_length=10, choices=InjectKind.choices, blank=True, default="")
    inject_source = models.CharField("injected from", max_length=2000, blank=True)

    class Meta(StreamJob.Meta):
        verbose_name = "SIP call"
        constraints = [
            models.UniqueConstraint(
                fields=["call_id"],
                condition=models.Q(state__in=ACTIVE_STATES),
                name="%(app_label)s_%(class)s_unique_active_call_id",
            ),
            models.UniqueConstraint(
                fields=["rtmp_url", "rtmp_stream"],
                condition=models.Q(state__in=ACTIVE_STATES) & ~models.Q(rtmp_url=""),
                name="%(app_label)s_%(class)s_unique_active_rtmp_url",
            ),
        ]

    def __str__(self) -> str:
        return f"call {self.call_id} to {self.callee}"

    @property
    def push_target(self) -> str:
        """``rtmpUrl`` with ``rtmpStream`` appended when one is given."""
        if not self.rtmp_url or not self.rtmp_stream:
            return self.rtmp_url
        return f"{self.rtmp_url.rstrip('/')}/{self.rtmp_stream}"

    @property
    def duration(self) -> timedelta | None:
        """Time since the far end answered (until the call ended)."""
        if self.established_at is None:
            return None
        return (self.ended_at or timezone.now()) - self.established_at

    @property
    def has_ended(self) -> bool:
        return self.status in ENDED_STATUSES

    def set_status(self, status: str, reason: str = "") -> None:
        """The SIP agent reported a new status (the only way ``status`` changes)."""
        self.status = status
        if reason:
            self.reason = reason[:500]
        if status == CallStatus.ESTABLISHED and self.established_at is None:
            self.established_at = timezone.now()
        if status in ENDED_STATUSES and self.ended_at is None:
            self.ended_at = timezone.now()
        self.save(update_fields=["status", "reason", "established_at", "ended_at"])
        for receiver, result in call_status_changed.send_robust(sender=type(self), call=self):
            if isinstance(result, Exception):
                logger.error("%s: receiver %s of call_status_changed failed: %r", self, receiver, result)

    def redial(self) -> None:
        """A worker places the call (again, after its last worker died): the status starts over."""
        self.status = CallStatus.PENDING
        self.reason = ""
        self.far_end = self.codec = ""
        self.established_at = self.ended_at = None
        self.injecting = ""
        self.inject_source = ""
        self.save(
            update_fields=[
                "status", "reason", "far_end", "codec", "established_at", "ended_at", "injecting", "inject_source"
            ]
        )  # fmt: skip

    def end_with_job(self) -> None:
        """The job is over (stopped or failed, by whoever): a call that did not report its end
        (no worker took it, or its worker died while hanging up) ends here."""
        if self.has_ended or self.is_active:
            return
        if self.state == JobState.ERROR:
            self.set_status(CallStatus.FAILED, self.error or "Failed")
        elif self.established_at is not None:
            self.set_status(CallStatus.FINISHED, self.reason or "Terminated")
        else:
            self.set_status(CallStatus.FAILED, self.reason or "Terminated before it was placed")

    def set_injecting(self, kind: str, source: str = "") -> None:
        self.injecting = kind
        self.inject_source = source
        self.save(update_fields=["injecting", "inject_source"])


class CallCommand(models.Model):
    """Something the API asked of a running call (DTMF, inject...), picked up by its worker."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="commands")
    kind = models.CharField("kind", max_length=20, choices=CommandKind.choices)
    arguments = models.JSONField("arguments", default=dict, blank=True)
    created_at = models.DateTimeField("created", default=timezone.now)
    sent_at = models.DateTimeField("sent to the call", null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.arguments} for {self.call}"

    def mark_sent(self) -> None:
        self.sent_at = timezone.now()
        self.save(update_fields=["sent_at"])
