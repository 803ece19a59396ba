"""A call's status follows its job: when the job stops or fails, however that happened, the call
ends. A call's row deleted (the job-history prune, the admin) takes its SIP log with it."""

from __future__ import annotations

import logging

from django.db.models.signals import post_delete
from django.dispatch import receiver

from apps.calls.models import Call
from apps.calls.services import call_log_folder
from apps.jobs.signals import job_state_changed
from media_engine.sip.logs import call_log_files

logger = logging.getLogger(__name__)


@receiver(job_state_changed, sender=Call)
def end_the_call_with_its_job(sender, job: Call, fields: set[str], **kwargs) -> None:
    job.end_with_job()


@receiver(post_delete, sender=Call)
def remove_the_calls_log(sender, instance: Call, **kwargs) -> None:
    for path in call_log_files(call_log_folder(), instance.pk):
        try:
            path.unlink()
        except OSError as error:
            logger.warning("could not remove %s: %s", path, error)
