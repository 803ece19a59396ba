"""WCS v3 views: plain async Django views (served by Daphne). A short method is answered as v2
answers it; a long one becomes a job for a worker, and the call awaits the job's end (its Channels
announcement) for the ``Prefer`` wait before answering 200 or 202. No thread waits meanwhile."""

from __future__ import annotations

import uuid

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers
from rest_framework.request import Request

from apps.api_wcs.authentication import WcsAuthRequired, WcsBasicAuthentication
from apps.api_wcs.errors import WcsError
from apps.api_wcs.views.base import Method, found, set_caller_host
from apps.api_wcs_v3.operations import is_long
from apps.api_wcs_v3.prefer import parse_prefer
from apps.api_wcs_v3.presenters import error_response, job_answer, job_to_wcs, result_response
from apps.async_jobs.choices import JobState
from apps.async_jobs.models import Job
from apps.async_jobs.services import create_job, wait_for_job
from apps.security.parsers import loads_limited


def check_credentials(request: HttpRequest) -> None:
    """v2's optional HTTP Basic authentication (``WCS_REST_AUTH``), with its answers."""
    drf_request = Request(request, authenticators=[WcsBasicAuthentication()])
    drf_request.user  # noqa: B018 - authenticates (AuthenticationFailed on bad credentials)
    if not WcsAuthRequired().has_permission(drf_request, None):
        raise exceptions.NotAuthenticated()


def json_body(request: HttpRequest) -> dict:
    """The body as v2 reads it: any content type, empty means ``{}``, an object or a 400."""
    if not request.body.strip():
        return {}
    data = loads_limited(request.body)  # ParseError (JsonTooDeep too) on bad JSON
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise WcsError(400, "Bad request: the body must be a JSON object")
    return data


def validated(method: Method, data: dict) -> dict:
    serializer = method.request(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def answer_inline(request: HttpRequest, method: Method) -> HttpResponse:
    check_credentials(request)
    set_caller_host(request)
    data = {} if request.method == "GET" else json_body(request)
    return result_response(method.handler(validated(method, data)))


def has_null_character(value: object) -> bool:
    """Whether a NUL character is in any key or string of ``value`` (PostgreSQL cannot store one)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_null_character(key) or has_null_character(item) for key, item in value.items())
    if isinstance(value, list):
        return any(has_null_character(item) for item in value)
    return False


def start_job(request: HttpRequest, method: Method, timeout: float) -> Job:
    """Validate as v2 does (bad input changes nothing), then queue the job with the body as sent."""
    check_credentials(request)
    data = json_body(request)
    validated(method, data)
    # The body is stored with the job as sent, unknown fields too: text with a NUL cannot be stored.
    if has_null_character(data):
        raise WcsError(400, "Bad request: null characters are not allowed")
    return create_job(method.route, data, timeout)


def method_view(method: Method):
    """The v3 view of one v2 method."""
    long = is_long(method)

    allowed = ("POST", "GET") if method.allows_get and not long else ("POST",)

    @csrf_exempt
    async def view(request: HttpRequest) -> HttpResponse:
        if request.method not in allowed:
            return error_response(request, exceptions.MethodNotAllowed(request.method))
        try:
            if not long:
                return await sync_to_async(answer_inline)(request, method)
            prefer = parse_prefer(
                request.headers.get("Prefer"),
                settings.WCS_JOBS_MAX_PREFER_WAIT_TIME,
                settings.WCS_JOBS_MAX_PREFER_TIMEOUT,
            )
            job = await sync_to_async(start_job)(request, method, prefer.timeout)
        except exceptions.APIException as error:
            return error_response(request, error)
        job = await wait_for_job(job.pk, prefer.wait)
        response = job_answer(request, job)
        if prefer.given:
            applied = ["respond-async"] if prefer.respond_async and not job.is_finished else []
            response["Preference-Applied"] = ", ".join([*applied, f"wait={prefer.wait:g}"])
        return response

    view.__name__ = view.__qualname__ = "wcs_v3_" + method.route.replace("/", "_")
    return view


# -- jobs -----------------------------------------------------------------------------------------


class JobFilter(serializers.Serializer):
    id = serializers.CharField(required=False)
    state = serializers.ChoiceField(JobState.values, required=False)
    method = serializers.CharField(required=False)


def find_jobs(request: HttpRequest) -> list[dict]:
    check_credentials(request)
    serializer = JobFilter(data=json_body(request))
    serializer.is_valid(raise_exception=True)
    criteria = serializer.validated_data
    jobs = Job.objects.all()
    if "id" in criteria:
        jobs = jobs.filter(pk=criteria["id"]) if _is_uuid(criteria["id"]) else jobs.none()
    if "state" in criteria:
        jobs = jobs.filter(state=criteria["state"])
    if "method" in criteria:
        jobs = jobs.filter(method=criteria["method"].strip("/"))
    return found([job_to_wcs(job) for job in jobs], "Jobs not found")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@csrf_exempt
async def jobs_find(request: HttpRequest) -> HttpResponse:
    """POST /rest-api/v3/jobs/find {"id", "state", "method"}: matching Job objects, newest first."""
    if request.method != "POST":
        return error_response(request, exceptions.MethodNotAllowed(request.method))
    try:
        return JsonResponse(await sync_to_async(find_jobs)(request), safe=False)
    except exceptions.APIException as error:
        return error_response(request, error)


def get_job(request: HttpRequest, job_id) -> dict:
    check_credentials(request)
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise WcsError(404, "Job not found")
    return job_to_wcs(job)


async def job_detail(request: HttpRequest, job_id) -> HttpResponse:
    """GET /rest-api/v3/jobs/<id> (the Location of a 202): the Job object."""
    if request.method != "GET":
        return error_response(request, exceptions.MethodNotAllowed(request.method))
    try:
        return JsonResponse(await sync_to_async(get_job)(request, job_id))
    except exceptions.APIException as error:
        return error_response(request, error)
