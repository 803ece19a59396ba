"""The call media job: a Celery task on the media queue runs the call's SIP agent, writes what it
reports to the call row, hands it the API's commands, and hangs up when the row asks to stop."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings

from apps.calls.choices import CallStatus, CommandKind, InjectKind
from apps.calls.models import Call, CallCommand
from apps.calls.services import call_log_folder
from apps.engine.models import EngineNode
from apps.jobs.choices import ACTIVE_STATES
from apps.jobs.runner import JobFailed, StopCheck, run_stream_job
from apps.streams.models import Stream
from media_engine.internal_auth import redact_url
from media_engine.sip.agent import CallSpec
from media_engine.sip.logs import call_log_path, prune_call_logs
from media_engine.sip.process import CallProcess

logger = logging.getLogger(__name__)
POLL_INTERVAL = 0.25  # seconds between looks at the row (stop, commands)


class CallJob:
    """Glue between a Call row and its SIP agent process."""

    def __init__(self, call: Call, agent: CallProcess, stop_check: StopCheck) -> None:
        self.call = call
        self.agent = agent
        self.stop_check = stop_check
        self.hangup_sent = False

    def run(self) -> None:
        self.agent.start()
        last_look = 0.0
        while not self.agent.finished():
            event = self.agent.next_event(timeout=0.05)
            if event is not None:
                self.on_event(event)
            if time.monotonic() - last_look >= POLL_INTERVAL:
                last_look = time.monotonic()
                if not self.hangup_sent and self.stop_check():
                    self.agent.send({"cmd": "hangup", "reason": "Terminated"})
                    self.hangup_sent = True
                self.send_commands()

    def on_event(self, event: dict) -> None:
        call, kind = self.call, event.get("event")
        if kind == "status":
            call.set_status(event["status"], event.get("reason") or "")
        elif kind == "far_end":
            call.held().update(far_end=event.get("uri", "")[:500])
        elif kind == "media":
            call.held().update(codec=event.get("codec", "")[:50])
        elif kind == "stats":
            call.held().update(published_bytes=event.get("published_bytes", 0))
        elif kind == "inject_end":
            if event.get("error"):
                logger.warning("%s: injecting failed: %s", call, event["error"])
            call.set_injecting(InjectKind.NONE)
        elif kind == "output_error":
            message = f"{redact_url(event.get('url', ''))}: {event.get('message', '')}"
            logger.warning("%s: %s", call, message)
            call.held().update(error=message[:2000])
        elif kind == "command_failed":
            logger.warning("%s: %s failed: %s", call, event.get("cmd"), event.get("message"))

    def send_commands(self) -> None:
        for command in CallCommand.objects.filter(call=self.call, sent_at__isnull=True):
            message = self.agent_command(command)
            if message is not None:
                self.agent.send(message)
            command.mark_sent()

    def agent_command(self, command: CallCommand) -> dict | None:
        arguments = command.arguments
        if command.kind == CommandKind.DTMF:
            return {"cmd": "dtmf", "digits": arguments["digits"], "method": arguments["method"]}
        if command.kind == CommandKind.INJECT_STOP:
            return {"cmd": "inject_stop"}
        if arguments.get("kind") == InjectKind.STREAM:
            # Read like any player of the engine (the URL carries a job token, so it is made here, not stored).
            stream = (
                Stream.objects.live()
                .select_related("node")
                .filter(application=self.call.application, name=arguments["source"], node__isnull=False)
                .first()
            )
            if stream is None:
                logger.warning("%s: stream %s ended before it could be injected", self.call, arguments["source"])
                return None
            source = stream.node.rtmp_url(self.call.application.name, stream.name)
            return {"cmd": "inject", "source": source, "video": True}  # its video too, if the call has video
        return {"cmd": "inject", "source": arguments["source"]}


def call_spec(call: Call, publish_urls: list[str]) -> CallSpec:
    return CallSpec(
        callee=call.callee,
        domain=call.sip_domain,
        login=call.sip_login,
        auth_name=call.sip_authentication_name,
        password=call.sip_password,
        outbound_proxy=call.sip_outbound_proxy,
        port=call.sip_port,
        register=call.sip_register_required,
        visible_name=call.visible_name,
        has_audio=call.has_audio,
        has_video=call.has_video,
        offer_opus=settings.SIP_OFFER_OPUS,
        publish_urls=publish_urls,
        bind_host=settings.SIP_BIND_HOST,
        public_address=settings.SIP_PUBLIC_ADDRESS,
        log_level=settings.SIP_LOG_LEVEL,
    )


def run_media(call: Call, node: EngineNode | None, should_stop: StopCheck) -> str:
    """The call from dial to hang-up (the runner gives it the engine node its toStream goes to);
    the reason it ended, or JobFailed when it failed."""
    call.redial()
    publish_urls = [node.rtmp_url(call.application.name, call.stream_name, publish=True)] if node else []
    if call.push_target:
        publish_urls.append(call.push_target)
    call.mark_started()
    log_folder = call_log_folder()
    log_folder.mkdir(parents=True, exist_ok=True)
    # Logs of calls pruned elsewhere (a call's row is pruned where the beat runs, maybe not here) go by age.
    live = Call.objects.filter(state__in=ACTIVE_STATES).values_list("pk", flat=True)
    prune_call_logs(log_folder, settings.JOB_HISTORY_DAYS * 86400, keep=set(live))
    agent = CallProcess(
        call_spec(call, publish_urls),
        log_path=call_log_path(log_folder, call.pk),
        log_max_bytes=settings.SIP_LOG_MAX_BYTES,
    )
    try:
        CallJob(call, agent, should_stop).run()
    finally:
        agent.stop()
    call.refresh_from_db()
    if not call.has_ended:
        call.set_status(CallStatus.FAILED, f"SIP agent exited ({agent.process.returncode})")
    if call.status == CallStatus.FAILED:
        raise JobFailed(call.reason)
    return call.reason


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def run_call(self, call_pk: int) -> str:
    return run_stream_job(Call, call_pk, run_media, self.request.id or "")
