"""Which WCS methods are long (run as a job by a worker) and how each is done: the v2 handler starts
the work, then the job waits for what it started (a pull live, a push or record started) and
stops it when cancelled, with the same terminate services as v2.

``LONG_METHODS`` is the marker; a v2 ``Method`` may also set ``runs_as_job`` (then the handler runs
in the worker and the job is done when it returns). Every other method is answered inline.
"""

from __future__ import annotations

from collections.abc import Callable

from apps.api_wcs.errors import WcsError
from apps.api_wcs.views.base import Method, wcs_application
from apps.async_jobs.operations import Done, JobFailed, Operation, Started, register_operation
from apps.jobs.choices import ACTIVE_STATES, JobState
from apps.streams.models import Stream


def v2_methods() -> dict[str, Method]:
    from apps.api_wcs.urls import METHODS

    return {method.route: method for method in METHODS}


def call_v2(method: Method, request: dict):
    """The v2 handler on the request (validated again by its serializer), WCS errors as JobFailed."""
    serializer = method.request(data=request)
    if not serializer.is_valid():
        from apps.api_wcs.errors import describe

        raise JobFailed(400, "Bad request: " + describe(serializer.errors))
    try:
        return method.handler(dict(serializer.validated_data))
    except WcsError as error:
        raise JobFailed(error.status_code, error.message) from error


def stream_is_live(application_id: int, name: str) -> bool:
    return Stream.objects.live().filter(application_id=application_id, name=name).exists()


# -- pulls: /vod/startup, /rtsp/startup, /pull/rtmp/pull ---------------------------------------------


def pull_operation(method: Method, kind: str) -> Operation:
    """Done when the pulled stream is live; failed when the pull fails or stops first."""
    from apps.api_wcs.views.agents import select
    from apps.pull.models import Pull
    from apps.pull.services import stop_pull

    def start(request: dict) -> Started:
        result = call_v2(method, request)
        # v2 refuses a second active agent of a kind with the same URI: the URI names the new pull.
        pull = next(iter(select(kind, {"uri": request["uri"]})), None)
        if pull is None:
            raise JobFailed(500, "Internal error: the pull ended at once")
        return Started(result, {"pull": pull.pk}, f"pull:{pull.pk}")

    def check(request: dict, handle: dict) -> Done | None:
        pull = Pull.objects.get(pk=handle["pull"])
        if pull.state == JobState.ERROR:
            raise JobFailed(500, pull.error or "Failed to pull provided URL")
        if pull.state in (JobState.STOPPING, JobState.STOPPED):
            raise JobFailed(500, "Stopped before it was live" + (f": {pull.error}" if pull.error else ""))
        if pull.started_at is not None and stream_is_live(pull.application_id, pull.stream_name):
            return Done(handle.get("result"))
        return None

    def stop(request: dict, handle: dict) -> None:
        pull = Pull.objects.filter(pk=handle["pull"], state__in=ACTIVE_STATES).first()
        if pull is not None:
            stop_pull(pull)

    return Operation(start, check, stop)


# -- pushes and records: /push/startup, /stream/startRecording, /recorder/startup ---------------------


def stream_job_operation(method: Method, kind: str, model, find: Callable, stop_service: Callable, present=None):
    """Done when the push or record runs (or is reserved for a stream that is not live, as in v2);
    failed when it errs or stops first; still running while it retries."""

    def start(request: dict) -> Started:
        result = call_v2(method, request)
        job = find(request, result)
        if job is None:
            raise JobFailed(500, "Internal error: it ended at once")
        return Started(result, {kind: job.pk}, f"{kind}:{job.pk}")

    def check(request: dict, handle: dict) -> Done | None:
        job = model.objects.get(pk=handle[kind])
        if job.state == JobState.ERROR:
            raise JobFailed(500, job.error or "Internal error")
        if job.state in (JobState.STOPPING, JobState.STOPPED):
            raise JobFailed(500, "Stopped before it started" + (f": {job.error}" if job.error else ""))
        reserved = job.state == JobState.READY and not stream_is_live(job.application_id, job.stream_name)
        if job.state == JobState.STARTED or reserved:
            return Done(present(job) if present else handle.get("result"))
        return None

    def stop(request: dict, handle: dict) -> None:
        job = model.objects.filter(pk=handle[kind], state__in=ACTIVE_STATES).first()
        if job is not None:
            stop_service(job)

    return Operation(start, check, stop)


def push_operation(method: Method) -> Operation:
    from apps.api_wcs.presenters import transponder_to_wcs
    from apps.push.models import Push
    from apps.push.services import stop_push

    def find(request: dict, result: dict):
        return Push.objects.filter(application=wcs_application(), push_id=result["mediaSessionId"]).first()

    return stream_job_operation(method, "push", Push, find, stop_push, present=transponder_to_wcs)


def record_operation(method: Method) -> Operation:
    from apps.recording.models import Record
    from apps.recording.services import stop_record

    def find(request: dict, result):
        return (
            Record.objects.filter(
                application=wcs_application(), record_id=request["mediaSessionId"], state__in=ACTIVE_STATES
            )
            .order_by("-created_at")
            .first()
        )

    return stream_job_operation(method, "record", Record, find, stop_record)


# -- multiple streams recorders: /multipleRecorder/startup --------------------------------------------


def multi_recorder_operation(method: Method) -> Operation:
    """Done once a worker runs the recorder (it records its members as they are added); failed when
    it errs or stops first."""
    from apps.multi_recorder.models import MultiRecorder
    from apps.multi_recorder.services import active_recorders, stop_multi_recorder

    def start(request: dict) -> Started:
        call_v2(method, request)
        recorder = active_recorders(wcs_application()).filter(uri=request["uri"]).first()
        if recorder is None:
            raise JobFailed(500, "Internal error: it ended at once")
        return Started(None, {"multirecorder": recorder.pk}, f"multirecorder:{recorder.pk}")

    def check(request: dict, handle: dict) -> Done | None:
        recorder = MultiRecorder.objects.get(pk=handle["multirecorder"])
        if recorder.state == JobState.ERROR:
            raise JobFailed(500, recorder.error or "Internal error")
        if recorder.state in (JobState.STOPPING, JobState.STOPPED):
            raise JobFailed(500, "Stopped before it started")
        return Done(None) if recorder.state == JobState.STARTED and recorder.started_at else None

    def stop(request: dict, handle: dict) -> None:
        recorder = MultiRecorder.objects.filter(pk=handle["multirecorder"], state__in=ACTIVE_STATES).first()
        if recorder is not None:
            stop_multi_recorder(recorder)

    return Operation(start, check, stop)


# -- SIP calls: /call/startup --------------------------------------------------------------------------


def call_operation(method: Method) -> Operation:
    """Done once the call is answered (ESTABLISHED) or has ended (FAILED: rejected, unreachable,
    registration refused; or already FINISHED): the result is the Call object, as /call/find shows
    it, whose ``status`` and ``sipMessage`` tell how it went. v2's /call/startup is ``void`` and the
    spec says nothing of v3's answer: a call that failed is an outcome of placing it, as WCS reports
    it in the Call object, not an error of the API (v2 errors, 400 and 409, fail the job before any
    SIP). Cancelled at its timeout while still ringing: the call is hung up (CANCEL)."""
    from apps.api_wcs.views.calls import call_to_wcs
    from apps.calls.choices import ENDED_STATUSES, CallStatus
    from apps.calls.models import Call
    from apps.calls.services import terminate_call

    def start(request: dict) -> Started:
        call_v2(method, request)
        # The call just created with this callId (it may have ended already: the newest is it).
        call = Call.objects.filter(application=wcs_application(), call_id=request["callId"]).order_by("-pk").first()
        if call is None:
            raise JobFailed(500, "Internal error: the call ended at once")
        return Started(None, {"call": call.pk}, f"call:{call.pk}")

    def check(request: dict, handle: dict) -> Done | None:
        call = Call.objects.select_related("application").get(pk=handle["call"])
        if call.status == CallStatus.ESTABLISHED or call.status in ENDED_STATUSES:
            return Done(call_to_wcs(call))
        return None

    def stop(request: dict, handle: dict) -> None:
        call = Call.objects.filter(pk=handle["call"], state__in=ACTIVE_STATES).first()
        if call is not None:
            terminate_call(call)

    return Operation(start, check, stop)


def handler_operation(method: Method) -> Operation:
    """A method marked ``runs_as_job`` with nothing to wait for after its handler."""
    return Operation(lambda request: Started(call_v2(method, request)))


# The long methods (WCS: "starting a VOD stream, connection to RTSP IP camera..."), by route.
LONG_METHODS: dict[str, Callable[[Method], Operation]] = {
    "vod/startup": lambda method: pull_operation(method, "vod"),
    "rtsp/startup": lambda method: pull_operation(method, "rtsp"),
    "pull/rtmp/pull": lambda method: pull_operation(method, "rtmp"),
    "push/startup": push_operation,
    "stream/startRecording": record_operation,
    "recorder/startup": record_operation,
    "multipleRecorder/startup": multi_recorder_operation,
    "call/startup": call_operation,
}


# What a long method's job answers where it differs from its v2 answer: the schema component of its
# result (the v3 OpenAPI document shows it).
V3_RESULTS: dict[str, str] = {"call/startup": "CallObject"}


def is_long(method: Method) -> bool:
    return method.route in LONG_METHODS or getattr(method, "runs_as_job", False)


def register_long_operations() -> None:
    for route, method in v2_methods().items():
        if route in LONG_METHODS:
            register_operation(route, LONG_METHODS[route](method))
        elif getattr(method, "runs_as_job", False):
            register_operation(route, handler_operation(method))
