"""A live stream's page in the admin (the operator's console): player (HLS, LL-HLS, WebRTC over WHEP),
tracks, viewers per protocol, bitrate chart, recent events, and actions that call the same services
and validation as the OME API: stop the stream, start a record or a push, take a snapshot."""

from __future__ import annotations

import logging

from celery.exceptions import TimeoutError as CeleryTimeout
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from rest_framework import serializers

from apps.api_ome.serializers.push import StartPushSerializer
from apps.api_ome.serializers.recording import StartRecordSerializer
from apps.pull.services import active_pull_of, stop_pull
from apps.push.models import Push
from apps.push.services import PushConflict, create_push
from apps.recording.models import Record
from apps.recording.services import RecordConflict, create_record
from apps.streams.choices import CONNECTION_KINDS
from apps.streams.models import Stream
from apps.streams.services import request_stop
from apps.streams.tasks import SNAPSHOT_TIMEOUT, take_snapshot
from apps.streams.views import media_base_url

logger = logging.getLogger(__name__)
RECENT = 20


def _errors(error: serializers.ValidationError) -> list[str]:
    """The API's validation errors as lines an operator reads ("url: ...")."""

    def walk(detail, prefix: str = ""):
        if isinstance(detail, dict):
            for key, value in detail.items():
                name = "" if key == "non_field_errors" else f"{prefix}{key}"
                yield from walk(value, f"{name}." if name else "")
        elif isinstance(detail, list):
            for item in detail:
                yield from walk(item, prefix)
        else:
            yield f"{prefix.rstrip('.')}: {detail}" if prefix else str(detail)

    return list(walk(error.detail))


def recent_events(stream: Stream) -> list[dict]:
    """What happened to this stream name lately: its publishes and ends, and its records and pushes
    starting and finishing (newest first)."""
    events = []
    for session in Stream.objects.filter(application=stream.application, name=stream.name)[:5]:
        events.append({"at": session.created_at, "text": f"published ({session.get_source_type_display()})"})
        if session.ended_at:
            events.append({"at": session.ended_at, "text": "ended"})
    for model, kind, id_field in ((Record, "record", "record_id"), (Push, "push", "push_id")):
        for job in model.objects.filter(application=stream.application, stream_name=stream.name).order_by(
            "-created_at"
        )[:RECENT]:
            name = f"{kind} {getattr(job, id_field)}"
            events.append({"at": job.created_at, "text": f"{name} requested"})
            if job.started_at:
                events.append({"at": job.started_at, "text": f"{name} started"})
            if job.finished_at:
                why = f": {job.error}" if job.error else ""
                events.append({"at": job.finished_at, "text": f"{name} {job.get_state_display().lower()}{why}"})
    events.sort(key=lambda event: event["at"], reverse=True)
    return events[:RECENT]


def jobs_of(stream: Stream) -> list[dict]:
    """The stream's latest records and pushes, with links to their admin pages (and recordings)."""
    jobs = []
    mine = {"application": stream.application, "stream_name": stream.name}
    for record in Record.objects.filter(**mine).order_by("-created_at")[:10]:
        jobs.append({
            "kind": "record", "id": record.record_id, "state": record.record_state, "error": record.error,
            "url": reverse("admin:recording_record_change", args=[record.pk]),
            "files": f"{reverse('admin:recording_files')}?record={record.pk}",
        })  # fmt: skip
    for push in Push.objects.filter(**mine).order_by("-created_at")[:10]:
        jobs.append({
            "kind": "push", "id": push.push_id, "state": push.state, "error": push.error,
            "url": reverse("admin:push_push_change", args=[push.pk]), "files": "",
        })  # fmt: skip
    return jobs


def page_state(stream: Stream) -> dict:
    """What the page refreshes every two seconds."""
    return {
        "state": stream.state,
        "live": stream.is_live,
        "viewers": stream.total_connections,
        "connections": {kind: count for kind, count in stream.connection_counts().items() if count},
        "throughputIn": stream.last_throughput_in,
        "throughputOut": stream.last_throughput_out,
        "tracks": stream.input_tracks or [],
        "jobs": jobs_of(stream),
        "events": [{"at": event["at"].isoformat(), "text": event["text"]} for event in recent_events(stream)],
    }


def _stream(pk: int) -> Stream:
    return get_object_or_404(Stream.objects.select_related("application__virtual_host", "node"), pk=pk)


def stream_page(request: HttpRequest, pk: int) -> HttpResponse:
    stream = _stream(pk)
    context = {"record_errors": [], "push_errors": [], "snapshot": None, "form": {}}
    if request.method == "POST":
        action = request.POST.get("action", "")
        handler = ACTIONS.get(action)
        if handler is None:
            messages.error(request, f"Unknown action {action!r}.")
        else:
            done = handler(request, stream, context)
            if done:
                return redirect(reverse("admin:streams_stream_live", args=[stream.pk]))
    base = media_base_url(request, stream)
    path = f"{base}/{stream.application.name}/{stream.name}"
    context.update(
        {
            **admin.site.each_context(request),
            "title": f"Stream {stream}",
            "stream": stream,
            "sources": {
                "hls": f"{path}/ts:playlist.m3u8",
                "llhls": f"{path}/llhls.m3u8",
                "whep": f"{path}?direction=whep",
            },
            "state": page_state(stream),
            "connection_kinds": CONNECTION_KINDS,
            "state_url": reverse("admin:streams_stream_live_state", args=[stream.pk]),
        }
    )
    return render(request, "admin/streams/stream/live.html", context, status=400 if context["form"] else 200)


def stream_page_state(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(page_state(_stream(pk)))


def _stop(request: HttpRequest, stream: Stream, context: dict) -> bool:
    # As OME's DELETE of a stream: a pulled stream is ended by stopping its pull (it would come back).
    pull = active_pull_of(stream.application, stream.name)
    if pull is not None:
        stop_pull(pull)
    if stream.is_live:
        request_stop(stream)
    messages.success(request, f"Asked {stream} to stop.")
    return True


def _start_job(request, stream, context, serializer_class, create, conflict, spec: dict, kind: str) -> bool:
    serializer = serializer_class(data=spec)
    try:
        serializer.is_valid(raise_exception=True)
        create(stream.application, serializer.validated_data)
    except serializers.ValidationError as error:
        context[f"{kind}_errors"] = _errors(error)
        context["form"] = request.POST
        return False
    except conflict:
        context[f"{kind}_errors"] = [f"Duplicate ID already exists: [{spec['id']}]"]
        context["form"] = request.POST
        return False
    messages.success(request, f"Started {kind} {spec['id']} of {stream.name}.")
    return True


def _record(request: HttpRequest, stream: Stream, context: dict) -> bool:
    spec = {"id": request.POST.get("record_id", "").strip(), "stream": {"name": stream.name}}
    for field, key in (("filePath", "file_path"), ("interval", "interval")):
        if request.POST.get(key, "").strip():
            spec[field] = request.POST[key].strip()
    return _start_job(request, stream, context, StartRecordSerializer, create_record, RecordConflict, spec, "record")


def _push(request: HttpRequest, stream: Stream, context: dict) -> bool:
    spec = {
        "id": request.POST.get("push_id", "").strip(),
        "stream": {"name": stream.name},
        "protocol": request.POST.get("protocol", ""),
        "url": request.POST.get("url", "").strip(),
        "streamKey": request.POST.get("stream_key", "").strip(),
    }
    return _start_job(request, stream, context, StartPushSerializer, create_push, PushConflict, spec, "push")


def _snapshot(request: HttpRequest, stream: Stream, context: dict) -> bool:
    # As WCS /stream/snapshot: a media worker grabs the current picture.
    try:
        picture = take_snapshot.delay(stream.pk).get(timeout=SNAPSHOT_TIMEOUT + 5)
    except CeleryTimeout:
        messages.error(request, "Snapshot taking error: no media worker answered.")
        return False
    except Exception as error:  # noqa: BLE001 - the worker's failure, told to the operator
        messages.error(request, f"Snapshot taking error: {error}")
        return False
    if picture is None:
        messages.error(request, "Snapshot taking error: the stream is not live.")
        return False
    context["snapshot"] = picture
    return False  # rendered on this page, not redirected away


ACTIONS = {"stop": _stop, "record": _record, "push": _push, "snapshot": _snapshot}
