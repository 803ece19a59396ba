"""The events that may finish a running v3 job: a pull, push or record changing state (in the
worker that runs it, or the API that stops it), a stream going live (in its engine node) and a SIP
call changing status (in the worker that runs it). Each
asks the jobs waiting on that row whether they are done (``recheck_watching``); rows no job waits
for cost one indexed query.

Media jobs change state only through their transitions (``apps.jobs.models.StreamJob``), which
send ``job_state_changed`` whether they wrote with ``.update()`` or ``.save()``."""

from __future__ import annotations

from apps.async_jobs.services import recheck_watching
from apps.jobs.signals import job_state_changed
from apps.streams.signals import stream_went_live


def on_stream_job_changed(kind: str):
    def receiver(sender, job, **kwargs) -> None:
        recheck_watching(f"{kind}:{job.pk}")

    return receiver


def on_stream_went_live(sender, stream, **kwargs) -> None:
    from apps.pull.services import active_pull_of

    pull = active_pull_of(stream.application, stream.name)
    if pull is not None:
        recheck_watching(f"pull:{pull.pk}")


def on_call_status_changed(sender, call, **kwargs) -> None:
    recheck_watching(f"call:{call.pk}")


def connect() -> None:
    from apps.calls.models import Call, call_status_changed
    from apps.multi_recorder.models import MultiRecorder
    from apps.pull.models import Pull
    from apps.push.models import Push
    from apps.recording.models import Record

    for kind, model in (("pull", Pull), ("push", Push), ("record", Record), ("multirecorder", MultiRecorder)):
        job_state_changed.connect(
            on_stream_job_changed(kind), sender=model, weak=False, dispatch_uid=f"async-jobs-{kind}"
        )
    stream_went_live.connect(on_stream_went_live, weak=False, dispatch_uid="async-jobs-stream-live")
    call_status_changed.connect(on_call_status_changed, sender=Call, weak=False, dispatch_uid="async-jobs-call")
