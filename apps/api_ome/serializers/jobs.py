"""What every media job shows in OME's JSON (id, state, where, stream, times, sequence, error);
each kind adds its own fields."""

from __future__ import annotations

from apps.api_ome.presenters import ome_time
from apps.jobs.models import StreamJob

# OME shows the epoch for times that have not happened yet.
EPOCH = "1970-01-01T00:00:00.000+00:00"


def job_to_ome(job: StreamJob, job_id: str, state: str | None = None, **fields) -> dict:
    """``state`` replaces the job's own where the kind names it differently (a record's "recording")."""
    data = {
        "id": job_id,
        "state": state or job.state,
        "vhost": job.application.virtual_host.name,
        "app": job.application.name,
        "stream": {"name": job.stream_name, "trackIds": job.track_ids, "variantNames": job.variant_names},
        **fields,
        "sequence": job.sequence,
        "createdTime": ome_time(job.created_at),
        "startTime": ome_time(job.started_at) or EPOCH,
        "finishTime": ome_time(job.finished_at) or EPOCH,
    }
    if job.error:
        data["error"] = job.error
    return data
