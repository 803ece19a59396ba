"""A call's status follows its job: when the job stops or fails, however that happened, the call ends."""

from __future__ import annotations

from django.dispatch import receiver

from apps.calls.models import Call
from apps.jobs.signals import job_state_changed


@receiver(job_state_changed, sender=Call)
def end_the_call_with_its_job(sender, job: Call, fields: set[str], **kwargs) -> None:
    job.end_with_job()
