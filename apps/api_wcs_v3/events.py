"""The events that may finish a running v3 job: a pull, push or record changing state (in the
worker that runs it) and a stream going live (in its engine node). Each asks the jobs waiting on
that row whether they are done (``recheck_watching``); rows no job waits for cost one indexed query."""

from __future__ import annotations

from django.db.models.signals import post_save

from apps.async_jobs.services import recheck_watching
from apps.streams.signals import stream_went_live

# Saves that touch only counters (a recorder's bytes every second) cannot finish a job.
STATE_FIELDS = {"state", "started_at", "error"}


def on_stream_job_saved(kind: str):
    def receiver(sender, instance, update_fields=None, **kwargs) -> None:
        if update_fields is not None and not STATE_FIELDS & set(update_fields):
            return
        recheck_watching(f"{kind}:{instance.pk}")

    return receiver


def on_stream_went_live(sender, stream, **kwargs) -> None:
    from apps.pull.services import active_pull_of

    pull = active_pull_of(stream.application, stream.name)
    if pull is not None:
        recheck_watching(f"pull:{pull.pk}")


def connect() -> None:
    from apps.multi_recorder.models import MultiRecorder
    from apps.pull.models import Pull
    from apps.push.models import Push
    from apps.recording.models import Record

    for kind, model in (("pull", Pull), ("push", Push), ("record", Record), ("multirecorder", MultiRecorder)):
        post_save.connect(on_stream_job_saved(kind), sender=model, weak=False, dispatch_uid=f"async-jobs-{kind}")
    stream_went_live.connect(on_stream_went_live, weak=False, dispatch_uid="async-jobs-stream-live")
