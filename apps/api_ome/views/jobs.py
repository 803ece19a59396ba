"""OME v1 actions on an application's media jobs: :startRecord/:stopRecord/:records and
:startPush/:stopPush/:pushes share one shape, configured per job kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from apps.api_ome.envelope import OmeError, ok
from apps.api_ome.schema import ERROR_ENVELOPE, OK_ENVELOPE, enveloped
from apps.api_ome.serializers.push import PushIdSerializer, PushSerializer, StartPushSerializer, push_to_ome
from apps.api_ome.serializers.recording import (
    RecordIdSerializer,
    RecordSerializer,
    StartRecordSerializer,
    record_to_ome,
)
from apps.api_ome.views.base import OmeAPIView
from apps.jobs.models import StreamJob
from apps.push.models import Push
from apps.push.services import PushConflict, create_push, stop_push
from apps.recording.models import Record
from apps.recording.services import RecordConflict, create_record, stop_record


@dataclass(frozen=True)
class JobKind:
    name: str  # "record" | "push": in error texts
    model: type[StreamJob]
    id_field: str
    start_serializer: type[serializers.Serializer]
    id_serializer: type[serializers.Serializer]
    schema_serializer: type[serializers.Serializer]
    create: Callable
    stop: Callable
    conflict: type[Exception]
    render: Callable[[StreamJob], dict]


RECORD = JobKind("record", Record, "record_id", StartRecordSerializer, RecordIdSerializer, RecordSerializer,
                 create_record, stop_record, RecordConflict, record_to_ome)  # fmt: skip
PUSH = JobKind("push", Push, "push_id", StartPushSerializer, PushIdSerializer, PushSerializer,
               create_push, stop_push, PushConflict, push_to_ome)  # fmt: skip


class JobView(OmeAPIView):
    kind: JobKind

    def jobs(self, application):
        return self.kind.model.objects.filter(application=application).select_related("application__virtual_host")


class StartJobView(JobView):
    def post(self, request, vhost: str, app: str):
        application = self.get_application(vhost, app)
        spec = self.validated(self.kind.start_serializer, self.body_object())
        try:
            job = self.kind.create(application, spec)
        except self.kind.conflict as conflict:
            raise OmeError(409, f"Duplicate ID already exists: [{conflict}]") from conflict
        return ok(self.kind.render(job))


class StopJobView(JobView):
    def post(self, request, vhost: str, app: str):
        application = self.get_application(vhost, app)
        job_id = self.validated(self.kind.id_serializer, self.body_object())["id"]
        job = self.jobs(application).filter(**{self.kind.id_field: job_id}).order_by("-created_at").first()
        if job is None:
            raise OmeError(404, f"Could not find the {self.kind.name}: [{vhost}/{app}/{job_id}]")
        self.kind.stop(job)
        return ok()


class ListJobsView(JobView):
    def post(self, request, vhost: str, app: str):
        application = self.get_application(vhost, app)
        body = request.data if request.data not in (None, "") else {}
        if not isinstance(body, dict):
            raise OmeError(400, "Request body must be an object")
        jobs = self.jobs(application)
        if body.get("id"):
            jobs = jobs.filter(**{self.kind.id_field: body["id"]})
        return ok([self.kind.render(job) for job in jobs])


def _documented(base: type[JobView], kind: JobKind, name: str, **schema) -> type[JobView]:
    """A subclass of ``base`` for ``kind`` whose POST carries the kind's own OpenAPI description
    (a fresh function each time: extend_schema annotates the function object it is given)."""

    def post(self, request, vhost: str, app: str):
        return base.post(self, request, vhost, app)

    return type(name, (base,), {"kind": kind, "post": extend_schema(**schema)(post)})


def job_views(kind: JobKind, tag: str, start: str, stop: str, listing: str) -> tuple[type, type, type]:
    """The three views of a job kind, each documented with the kind's own shapes."""
    errors = {400: ERROR_ENVELOPE, 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE}
    title = kind.name.capitalize()
    return (
        _documented(
            StartJobView, kind, f"Start{title}View", tags=[tag], summary=start, operation_id=f"omeStart{title}",
            request=kind.start_serializer,
            description="Reserved until the stream is live; then it starts within a second.",
            responses={200: enveloped(f"{title}Started", kind.schema_serializer()), 409: ERROR_ENVELOPE, **errors},
        ),
        _documented(
            StopJobView, kind, f"Stop{title}View", tags=[tag], summary=stop, operation_id=f"omeStop{title}",
            request=kind.id_serializer, responses={200: OK_ENVELOPE, **errors},
        ),
        _documented(
            ListJobsView, kind, f"List{title}View", tags=[tag], summary=listing, operation_id=f"omeList{title}",
            request=kind.id_serializer,
            responses={200: enveloped(f"{title}List", kind.schema_serializer(many=True)), **errors},
        ),
    )  # fmt: skip


StartRecordView, StopRecordView, RecordsView = job_views(
    RECORD, "OME v1: recording", "Start recording", "Stop recording", "Get recording state"
)
StartPushView, StopPushView, PushesView = job_views(
    PUSH, "OME v1: push", "Start push publishing", "Stop push publishing", "Get push publishing state"
)
