"""SIP calls: start one (validated, no clash with a live call), find, terminate, and queue the
commands a running call takes (DTMF, injected sound or stream) for its worker."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.calls.choices import ENDED_STATUSES, CallStatus, CommandKind, DtmfType, InjectKind
from apps.calls.models import DEFAULT_SIP_PORT, Call, CallCommand
from apps.hosting.models import Application
from apps.jobs import services as jobs
from apps.jobs.choices import ACTIVE_STATES
from apps.jobs.paths import UnsafePath, confine
from apps.security.outbound import check_outbound_url
from apps.streams.models import Stream
from media_engine.jobs.push import validate_push_target

DTMF_DIGITS = re.compile(r"^[0-9A-Da-d*#]{1,32}$")
HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")


class CallConflict(Exception):
    """A live call already has this callId or rtmpUrl (or its toStream is a live stream's name)."""


class CallNotEstablished(Exception):
    """The call has not been answered (or has ended): it takes no DTMF."""


class SourceNotFound(Exception):
    """The file or the stream to inject does not exist."""


def call_log_folder() -> Path:
    """Where the SIP agents of this machine write their calls' logs."""
    return Path(settings.VAR_DIR) / "sip"


def call_task():
    from apps.calls.tasks import run_call

    return run_call


def start_call(application: Application, request: dict) -> Call:
    """A new call (WCS /call/startup fields), queued for a media worker once the transaction
    commits. ValueError for a request that cannot be placed; CallConflict for a clash."""
    callee = (request.get("callee") or "").strip()
    domain = (request.get("sipDomain") or "").strip()
    if not callee:
        raise ValueError("callee is required")
    if not domain or not HOST.match(domain):
        raise ValueError("sipDomain must be a host name or address")
    proxy = (request.get("sipOutboundProxy") or "").strip()
    if proxy and not HOST.match(proxy):
        raise ValueError("sipOutboundProxy must be a host name or address")
    port = request.get("sipPort") or DEFAULT_SIP_PORT
    if not 0 < port < 65536:
        raise ValueError("sipPort must be between 1 and 65535")
    rtmp_url = (request.get("rtmpUrl") or "").strip()
    if rtmp_url:
        rtmp_url = validate_push_target("rtmp", rtmp_url)  # the checks of every RTMP push target
        check_outbound_url(rtmp_url)
    # Where the SIP agent sends its INVITE (and REGISTER): the outbound policy's, as every outgoing connection.
    sip_host = proxy or domain
    if ":" in sip_host and not sip_host.startswith("["):
        sip_host = f"[{sip_host}]"  # an IPv6 address in a URL
    check_outbound_url(f"sip://{sip_host}:{port}")
    to_stream = (request.get("toStream") or "").strip()
    if request.get("sipRegisterRequired") and not request.get("sipPassword"):
        raise ValueError("sipRegisterRequired needs sipPassword")
    with transaction.atomic():
        active = Call.objects.filter(state__in=ACTIVE_STATES)
        if active.filter(call_id=request["callId"]).exists():
            raise CallConflict(f"a call with callId {request['callId']} exists")
        rtmp_stream = (request.get("rtmpStream") or "").strip()
        if rtmp_url and active.filter(rtmp_url=rtmp_url, rtmp_stream=rtmp_stream).exists():
            raise CallConflict(f"a call already sends to {rtmp_url}")
        if to_stream and (
            Stream.objects.live().filter(application=application, name=to_stream).exists()
            or active.filter(application=application, stream_name=to_stream).exists()
        ):
            raise CallConflict(f"stream {to_stream} is already live")
        try:
            call = Call.objects.create(
                application=application,
                stream_name=to_stream,
                call_id=request["callId"],
                callee=callee,
                visible_name=request.get("visibleName", ""),
                sip_login=request.get("sipLogin", ""),
                sip_authentication_name=request.get("sipAuthenticationName", ""),
                sip_password=request.get("sipPassword", ""),
                sip_domain=domain,
                sip_outbound_proxy=proxy,
                sip_port=port,
                sip_register_required=bool(request.get("sipRegisterRequired", False)),
                has_audio=request.get("hasAudio", True),
                has_video=request.get("hasVideo", False),
                rtmp_url=rtmp_url,
                rtmp_stream=rtmp_stream,
                app_key=request.get("appKey", ""),
            )
        except IntegrityError as error:  # a concurrent startup with the same callId or rtmpUrl won
            raise CallConflict(str(error)) from error
        jobs.dispatch(call, call_task())
    return call


def recent_calls() -> QuerySet[Call]:
    """Live calls, and ended ones for ``SIP_CALL_HISTORY_SECONDS`` (so a client can read how its
    call ended, e.g. FAILED with the far end's reason)."""
    since = timezone.now() - timedelta(seconds=settings.SIP_CALL_HISTORY_SECONDS)
    return Call.objects.filter(Q(state__in=ACTIVE_STATES) | Q(finished_at__gte=since) | Q(ended_at__gte=since))


def find_calls(filters: dict) -> list[Call]:
    calls = recent_calls()
    if filters.get("callId"):
        calls = calls.filter(call_id=filters["callId"])
    if filters.get("callee"):
        calls = calls.filter(callee=filters["callee"])
    if filters.get("rtmpUrl"):
        calls = calls.filter(rtmp_url=filters["rtmpUrl"])
    if filters.get("status"):
        calls = calls.filter(status=filters["status"].upper())
    return list(calls.select_related("application").order_by("created_at"))


def live_call(call_id: str) -> Call | None:
    """The call with this callId that has not ended (None when there is none)."""
    calls = Call.objects.filter(call_id=call_id, state__in=ACTIVE_STATES).exclude(status__in=ENDED_STATUSES)
    return calls.order_by("-created_at").first()


def terminate_call(call: Call) -> Call:
    """Hang up: the worker sends BYE (or CANCEL before the answer); a call no worker took yet just ends."""
    with transaction.atomic():
        # Locked: the worker may be writing the call's status at this moment.
        call = Call.objects.select_for_update().get(pk=call.pk)
        call.request_stop()  # a call no worker had just ends (apps.calls.signals)
    return call


def send_dtmf(call: Call, digits: str, dtmf_type: str | None) -> CallCommand:
    if not DTMF_DIGITS.match(digits or ""):
        raise ValueError("dtmf must be 1 to 32 of 0-9, A-D, * and #")
    dtmf_type = (dtmf_type or DtmfType.RFC2833).upper()
    if dtmf_type not in DtmfType.values:
        raise ValueError(f"type must be one of {', '.join(DtmfType.values)}")
    if call.status != CallStatus.ESTABLISHED:
        raise CallNotEstablished(call.status)
    method = "rfc2833" if dtmf_type == DtmfType.RFC2833 else "info"
    return CallCommand.objects.create(call=call, kind=CommandKind.DTMF, arguments={"digits": digits, "method": method})


def inject_sound(call: Call, file_name: str) -> CallCommand:
    """Play a file under the media root into the call (SourceNotFound when it is not there)."""
    try:
        path = confine(file_name)
    except UnsafePath as error:
        raise SourceNotFound(str(error)) from error
    if not path.is_file():
        raise SourceNotFound(file_name)
    return _inject(call, InjectKind.SOUND, str(path))


def inject_stream(call: Call, stream_name: str) -> CallCommand:
    """Play a live stream of the call's application into the call (SourceNotFound when it is not live)."""
    stream = Stream.objects.live().filter(application=call.application, name=stream_name, node__isnull=False).first()
    if stream is None:
        raise SourceNotFound(stream_name)
    return _inject(call, InjectKind.STREAM, stream_name)


def _inject(call: Call, kind: str, source: str) -> CallCommand:
    call.set_injecting(kind, source)
    return CallCommand.objects.create(call=call, kind=CommandKind.INJECT, arguments={"kind": kind, "source": source})


def stop_injecting(call: Call) -> CallCommand:
    call.set_injecting(InjectKind.NONE)
    return CallCommand.objects.create(call=call, kind=CommandKind.INJECT_STOP)
