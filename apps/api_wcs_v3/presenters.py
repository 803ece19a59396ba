"""WCS v3 answers: the Job object, a finished job as the answer its v2 method would give, and WCS
error bodies (rendered by v2's one exception handler, so the texts are the same)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions

from apps.api_wcs.errors import WcsError, wcs_exception_handler
from apps.async_jobs.choices import JobState
from apps.async_jobs.models import Job

JOBS_PREFIX = "/rest-api/v3/jobs/"


def epoch_ms(moment) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


def job_to_wcs(job: Job) -> dict:
    """WCS's Job object; times in ms since the epoch (as WCS's other objects), null until they happen."""
    return {
        "id": str(job.pk),
        "method": job.method,
        "state": job.state,
        "request": job.public_request,
        "result": job.result,
        "error": job.public_error,
        "createdTime": epoch_ms(job.created_at),
        "startedTime": epoch_ms(job.started_at),
        "finishedTime": epoch_ms(job.finished_at),
    }


def job_location(job: Job) -> str:
    return f"{JOBS_PREFIX}{job.pk}"


def error_response(request: HttpRequest, error: exceptions.APIException) -> HttpResponse:
    rendered = wcs_exception_handler(error, {"request": request})
    response = JsonResponse(rendered.data, status=rendered.status_code)
    for header in ("WWW-Authenticate",):
        if header in rendered:
            response[header] = rendered[header]
    return response


def result_response(result) -> HttpResponse:
    """A v2 method's success: its JSON, or an empty 200 for ``void`` methods."""
    if result is None:
        return HttpResponse(status=200, content_type="application/json")
    return JsonResponse(result, safe=False)


def job_answer(request: HttpRequest, job: Job) -> HttpResponse:
    """The answer to a long call once its wait is over: 200 with the result, the v2 error of a failed
    job, 200 with the Job object (state CANCELLED, ``error`` the reason) for a job its timeout
    cancelled within the wait, or 202 Accepted with the Job object while it runs. WCS answers 200 or
    202 only (its documents show no other status for a job that ended): a cancelled job is an
    outcome, told by its state. Both Job answers carry the job's Location."""
    if job.state == JobState.DONE:
        return result_response(job.result)
    if job.state == JobState.FAILED:
        return error_response(request, WcsError(job.error_status or 500, job.public_error))
    if job.state == JobState.CANCELLED:
        response = JsonResponse(job_to_wcs(job), status=200)
    else:
        response = JsonResponse(job_to_wcs(job), status=202)
    response["Location"] = job_location(job)
    return response
