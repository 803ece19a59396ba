"""One SIP call in a process of its own: PJSIP (pjsua2) registers when asked, places the call,
reports its states, and bridges its audio: what the far end says is published as AAC over RTMP,
and sounds or live streams are played into the call. PJSIP's build has no video: when the call
asks for it (``has_video``), the agent offers H.264 in an ``m=video`` line of its own (written
into PJSIP's SDP offer, in place of a second audio line PJSIP provisions for it), receives the
far end's video itself (`video.H264Receiver`), published beside the audio, and sends an injected
live stream's video (`video.H264Sender`). A re-INVITE of the far end that adds or removes the
video is followed: the publisher publishes again with the tracks the call now has, and the
injected video starts or stops. Nor has it Opus: with ``offer_opus`` the agent offers it in an
``m=audio`` line of its own beside PJSIP's (`opus.OpusLine`), the call's audio while the far end
takes that line.

Run as ``python -m media_engine.sip.agent``. The first line on stdin is the call's `CallSpec`
as JSON; later lines are commands (``hangup``, ``dtmf``, ``inject``, ``inject_stop``). Events go
to stdout as JSON lines (``status``, ``far_end``, ``media``, ``output_error``, ``inject_end``,
``stats``, ``dtmf_received``). The process ends after the call has ended; stdin closing (its
controller died) hangs the call up.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field

import pjsua2 as pj

from media_engine.sip.audio import CallPublisher, PcmFeeder
from media_engine.sip.opus import OPUS_CODEC, OpusLine, answered_opus, opus_offer_lines
from media_engine.sip.video import (
    H264_CODEC,
    H264Receiver,
    H264Sender,
    answered_h264,
    video_destination,
    video_offer_lines,
)

logger = logging.getLogger(__name__)

CLOCK_RATE = 16000  # the conference bridge's rate: G.711 (8 kHz) and G.722 (16 kHz) are resampled to it
FRAME_MS = 20
STATS_INTERVAL = 2.0
REGISTRATION_TIMEOUT = 20.0
LINGER_AFTER_END = 0.5  # lets the last BYE/200 OK leave before the endpoint is destroyed
VIDEO_WAIT = 5.0  # seconds the publisher waits for the far end's first picture before going audio only
# PJSIP's audio codecs in a call with lines of our own (Opus, video): pjsua2 hands `onCallSdpCreated`
# an empty SDP when the offer (PJSIP's media lines, each with every codec it has) does not fit its
# buffer, so the offer is kept short.
OWN_LINES_AUDIO_CODECS = ("PCMU/", "PCMA/", "G722/")

# What WCS calls a call's status.
PENDING, TRYING, RINGING, SESSION_PROGRESS = "PENDING", "TRYING", "RINGING", "SESSION_PROGRESS"
ESTABLISHED, FINISHED, FAILED = "ESTABLISHED", "FINISHED", "FAILED"
DTMF_METHODS = {"rfc2833": pj.PJSUA_DTMF_METHOD_RFC2833, "info": pj.PJSUA_DTMF_METHOD_SIP_INFO}
# SIP answers of a far end that takes none of the offered codecs.
NOT_ACCEPTABLE = {415, 488, 606}
# RTP payload types with a static codec (RFC 3551), for SDP without rtpmap lines.
STATIC_PAYLOADS = {"0": "PCMU/8000", "3": "GSM/8000", "8": "PCMA/8000", "9": "G722/8000", "18": "G729/8000",
                   "26": "JPEG/90000", "34": "H263/90000"}  # fmt: skip


def _swig_byte_vector_bytes(vector: pj.ByteVector) -> bytes:
    return bytes(vector)  # SWIG's iterator: a Python call per byte (2 ms for a 20 ms frame)


def _stored_byte_vector_bytes(vector: pj.ByteVector) -> bytes:
    # The std::vector behind the proxy starts with pointers to its first byte and past its last
    # (libstdc++'s layout): its bytes are read in one copy.
    begin, end = ctypes.cast(int(vector.this), ctypes.POINTER(ctypes.c_void_p * 2)).contents
    return ctypes.string_at(begin, end - begin) if begin and end else b""


def _byte_vector_reader():
    """How the bytes of a pjsua2 ``ByteVector`` (a frame's samples) are read: straight from the
    vector's storage when a check shows that layout, else through SWIG's iterator."""
    sample = bytes(range(256)) * 3
    try:
        if _stored_byte_vector_bytes(pj.ByteVector(sample)) == sample and not _stored_byte_vector_bytes(
            pj.ByteVector()
        ):
            return _stored_byte_vector_bytes
    except (TypeError, ValueError, OSError):  # pragma: no cover - another C++ library
        pass
    logger.warning("pjsua2's ByteVector is not laid out as expected: frames are read byte by byte")
    return _swig_byte_vector_bytes


byte_vector_bytes = _byte_vector_reader()


def sdp_codecs(sdp: str) -> list[str]:
    """The codecs of the media lines of ``sdp`` (``opus/48000/2``, ``H264/90000``...), in order,
    without telephone events."""
    rtpmap: dict[str, str] = {}
    payloads: list[str] = []
    for line in sdp.replace("\r", "").split("\n"):
        line = line.strip()
        if line.startswith("m=") and len(fields := line[2:].split()) > 3:
            payloads += fields[3:]
        elif line.startswith("a=rtpmap:"):
            payload, _, name = line[len("a=rtpmap:") :].partition(" ")
            rtpmap[payload] = name.strip()
    codecs = [rtpmap.get(payload) or STATIC_PAYLOADS.get(payload, f"payload {payload}") for payload in payloads]
    return [codec for codec in dict.fromkeys(codecs) if not codec.lower().startswith("telephone-event")]


def unsupported_codecs_reason(far_end: list[str], ours: list[str], sip_reason: str = "") -> str:
    """Why a call whose far end takes none of our codecs failed, for WCS's ``sipMessage``."""
    said = f"{sip_reason}: " if sip_reason else ""
    offered = f"the far end offers {', '.join(far_end)}" if far_end else "the far end accepts none of our codecs"
    return (
        f"{said}Unsupported codecs: {offered}; StreamHub's SIP agent has {', '.join(ours)} "
        "(its PJSIP build has no Opus: Opus and H.264 video are carried only beside audio PJSIP has)"
    )


@dataclass
class CallSpec:
    callee: str
    domain: str
    login: str = ""
    auth_name: str = ""
    password: str = ""
    outbound_proxy: str = ""
    port: int = 5060
    register: bool = False
    visible_name: str = ""
    has_audio: bool = True
    has_video: bool = False
    offer_opus: bool = False  # an Opus line of our own beside PJSIP's audio line (see `opus`)
    publish_urls: list[str] = field(default_factory=list)
    bind_host: str = ""
    public_address: str = ""
    log_level: int = 3  # PJSIP's (4 and up: every SIP message)

    @property
    def server(self) -> str:
        return f"{self.domain}:{self.port}"

    def account_uri(self) -> str:
        uri = f"sip:{self.login or 'streamhub'}@{self.domain}"
        return f'"{self.visible_name}" <{uri}>' if self.visible_name else uri

    def callee_uri(self) -> str:
        if self.callee.startswith(("sip:", "sips:")):
            return self.callee
        # Through an outbound proxy the request URI names the domain; otherwise the server itself.
        host = self.domain if self.outbound_proxy else self.server
        return f"sip:{self.callee}@{host}"


class Events:
    """JSON lines on stdout, from any thread."""

    def __init__(self, out=sys.stdout) -> None:
        self.out = out
        self.lock = threading.Lock()

    def emit(self, event: str, **fields) -> None:
        with self.lock:
            self.out.write(json.dumps({"event": event, **fields}) + "\n")
            self.out.flush()


class CallAudioSink(pj.AudioMediaPort):
    """Receives the far end's audio from the conference bridge and hands it to the publisher."""

    def __init__(self, publisher: CallPublisher | None) -> None:
        super().__init__()
        self.publisher = publisher
        self.opus: OpusLine | None = None  # set while the call's audio comes as Opus: its frames instead
        self.silence = bytes(CLOCK_RATE // 1000 * FRAME_MS * 2)
        self.frames = 0

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802 - pjsua2's name
        self.frames += 1
        if self.publisher is None:
            return
        opus = self.opus
        if opus is not None:
            pcm = opus.next_frame()  # at the bridge's pace, as PJSIP's own audio
        elif frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
            pcm = byte_vector_bytes(frame.buf)
        else:
            pcm = None
        # The bridge sends no samples while nobody talks: keep the timeline with silence.
        self.publisher.put(pcm or self.silence)


class CallAudioSource(pj.AudioMediaPort):
    """Plays the current feeder's PCM into the call (silence when there is none)."""

    def __init__(self) -> None:
        super().__init__()
        self.feeder: PcmFeeder | None = None
        self.opus: OpusLine | None = None  # set while the call's audio goes as Opus
        self.silence = bytes(CLOCK_RATE // 1000 * FRAME_MS * 2)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:  # noqa: N802 - pjsua2's name
        feeder = self.feeder
        pcm = feeder.next_frame() if feeder is not None else None
        # Silence rather than no frame: the call keeps sending RTP (and with it DTMF events)
        # whether or not anything is being played into it.
        pcm = pcm or self.silence
        opus = self.opus
        if opus is not None:
            # The far end takes our audio as Opus: PJSIP's own line carries silence (and DTMF events).
            opus.send_pcm(pcm)
            pcm = self.silence
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(pcm)
        frame.size = len(pcm)


def audio_port(name: str, port: pj.AudioMediaPort) -> pj.AudioMediaPort:
    media_format = pj.MediaFormatAudio()
    media_format.init(pj.PJMEDIA_FORMAT_PCM, CLOCK_RATE, 1, FRAME_MS * 1000, 16)
    port.createPort(name, media_format)
    return port


class Account(pj.Account):
    def __init__(self, agent: CallAgent) -> None:
        super().__init__()
        self.agent = agent

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802 - pjsua2's name
        self.agent.on_registration(prm.code, prm.reason)


class Call(pj.Call):
    def __init__(self, agent: CallAgent, account: Account) -> None:
        super().__init__(account)
        self.agent = agent

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802 - pjsua2's name
        # The answer's SDP is read here too: the call state changes (CONNECTING) before the media
        # state does, while the transaction's own callback comes after both.
        self._keep_remote_sdp(prm.e)
        self.agent.on_call_state(self.getInfo())

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802 - pjsua2's name
        self.agent.on_media_state(self)

    def onCallSdpCreated(self, prm: pj.OnCallSdpCreatedParam) -> None:  # noqa: N802 - pjsua2's name
        self.agent.on_sdp_created(prm.sdp)

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:  # noqa: N802 - pjsua2's name
        self._keep_remote_sdp(prm.e)

    def _keep_remote_sdp(self, event: pj.SipEvent) -> None:
        try:
            message = event.body.tsxState.src.rdata.wholeMsg  # a message received, if this event is one
        except (AttributeError, pj.Error):
            return
        if message and "\nm=" in message.replace("\r", ""):
            self.agent.remote_sdp = message  # the far end's latest offer or answer

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:  # noqa: N802 - pjsua2's name
        self.agent.events.emit("dtmf_received", digit=prm.digit)


class CallAgent:
    """Owns the PJSIP endpoint of this process and its one call, on the main thread (PJSIP's
    callbacks run inside `libHandleEvents`, called from `run`)."""

    def __init__(self, spec: CallSpec, events: Events, commands: queue.Queue) -> None:
        self.spec = spec
        self.events = events
        self.commands = commands
        self.status = PENDING
        self.reason = ""
        self.was_established = False
        self.remote_sdp = ""
        self.codecs_refused = False
        self.registered: bool | None = None if spec.register else True
        self.registration_error = ""
        self.endpoint = pj.Endpoint()
        self.account: Account | None = None
        self.call: Call | None = None
        self.publisher: CallPublisher | None = None
        self.sink: CallAudioSink | None = None
        self.source: CallAudioSource | None = None
        self.connected_media: pj.AudioMedia | None = None
        self.video: H264Receiver | None = None
        self.video_target: tuple[str, int] | None = None  # where the far end takes our video
        self.video_sender: H264Sender | None = None
        self.video_source: str | None = None  # the injected stream whose video goes into the call
        self.opus: OpusLine | None = None
        self.opus_active = False  # the far end took our Opus line: the call's audio is that line's

    # --- life --------------------------------------------------------------------------------
    def run(self) -> None:
        self._start_endpoint()
        try:
            self._set_status(PENDING)
            self._create_account()
            if not self._wait_for_registration():
                self._set_status(FAILED, self.registration_error)
                return
            self._place_call()
            last_stats = time.monotonic()
            while self.status not in (FINISHED, FAILED):
                self.endpoint.libHandleEvents(FRAME_MS)
                self._run_commands()
                if time.monotonic() - last_stats >= STATS_INTERVAL:
                    self._report_stats()
                    last_stats = time.monotonic()
            self._report_stats()
        finally:
            self._shutdown()

    def _start_endpoint(self) -> None:
        self.endpoint.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0  # events are polled from run(): PJSIP calls us on this thread
        config.uaConfig.mainThreadOnly = False
        config.uaConfig.userAgent = "StreamHub"
        config.logConfig.level = self.spec.log_level
        config.logConfig.consoleLevel = self.spec.log_level
        config.medConfig.clockRate = CLOCK_RATE
        config.medConfig.sndClockRate = CLOCK_RATE
        config.medConfig.channelCount = 1
        config.medConfig.audioFramePtime = FRAME_MS
        config.medConfig.noVad = True  # keep sending (and receiving) through silence
        config.medConfig.ecTailLen = 0  # no echo canceller: it would eat a steady tone
        self.endpoint.libInit(config)
        transport = pj.TransportConfig()
        transport.port = 0
        if self.spec.bind_host:
            transport.boundAddress = self.spec.bind_host
        if self.spec.public_address:
            transport.publicAddress = self.spec.public_address
        self.endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.endpoint.libStart()
        self.endpoint.audDevManager().setNullDev()  # no sound card: the null device clocks the bridge
        if self.spec.has_video or self.spec.offer_opus:
            for codec in self.endpoint.codecEnum2():
                if not codec.codecId.startswith(OWN_LINES_AUDIO_CODECS):
                    self.endpoint.codecSetPriority(codec.codecId, 0)

    def _create_account(self) -> None:
        spec = self.spec
        config = pj.AccountConfig()
        config.idUri = spec.account_uri()
        if spec.register:
            config.regConfig.registrarUri = f"sip:{spec.server}"
            config.regConfig.timeoutSec = 300
            config.regConfig.unregWaitMsec = 1000  # the un-REGISTER at the end holds the exit no longer
        if spec.outbound_proxy:
            config.sipConfig.proxies.append(f"sip:{spec.outbound_proxy}:{spec.port};lr")
        if spec.password:
            username = spec.auth_name or spec.login
            config.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", username, 0, spec.password))
        if spec.bind_host:
            config.mediaConfig.transportConfig.boundAddress = spec.bind_host
        if spec.public_address:
            config.mediaConfig.transportConfig.publicAddress = spec.public_address
        self.account = Account(self)
        self.account.create(config)

    def _wait_for_registration(self) -> bool:
        deadline = time.monotonic() + REGISTRATION_TIMEOUT
        while self.registered is None:
            if time.monotonic() >= deadline:
                self.registration_error = "Registration failed: no answer from the registrar"
                return False
            self.endpoint.libHandleEvents(FRAME_MS)
            if self._hangup_requested():
                self.registration_error = "Terminated before registration"
                return False
        return self.registered

    def _place_call(self) -> None:
        self.sink = audio_port("call-in", CallAudioSink(None))
        self.source = audio_port("call-out", CallAudioSource())
        self.call = Call(self, self.account)
        parameters = pj.CallOpParam(True)
        parameters.opt.audioCount = 1
        parameters.opt.videoCount = 0
        # Lines of our own: more media lines PJSIP provisions (as audio), rewritten by on_sdp_created
        # into our Opus m=audio and our m=video, in that order after PJSIP's audio line. PJSIP's
        # stream for such a line fails (no codec of its own) and is left alone; the call goes on
        # while its own audio line is up.
        if self.spec.offer_opus:
            self.opus = OpusLine(self.spec.bind_host, CLOCK_RATE)
            self.opus.start()
            parameters.opt.audioCount += 1
        if self.spec.has_video:
            self.video = H264Receiver(self.spec.bind_host, self._on_video_picture)
            self.video.start()
            parameters.opt.audioCount += 1
        self._set_status(TRYING)
        try:
            self.call.makeCall(self.spec.callee_uri(), parameters)
        except pj.Error as error:
            self._set_status(FAILED, f"Cannot call {self.spec.callee_uri()}: {error.reason}")

    def _shutdown(self) -> None:
        if self.source is not None:
            self._stop_feeder()
        if self.call is not None and self.call.isActive():
            try:
                self.call.hangup(pj.CallOpParam(True))
            except pj.Error:
                pass
        deadline = time.monotonic() + LINGER_AFTER_END
        while time.monotonic() < deadline:
            self.endpoint.libHandleEvents(FRAME_MS)
        if self.video is not None:
            self.video.stop()
        if self.opus is not None:
            self.opus.stop()
        if self.publisher is not None:
            self.publisher.stop()
        # pjsua2 objects go before the library, in this order, or it crashes on the way out.
        self.call = None
        self.connected_media = None
        self.sink = self.source = None
        self.account = None
        self.endpoint.libDestroy()

    # --- PJSIP callbacks ---------------------------------------------------------------------
    def on_sdp_created(self, sdp: pj.SdpSession) -> None:
        """Our offer (or answer) is about to be sent: the media lines after PJSIP's audio line
        become our own (Opus m=audio, m=video)."""
        own = [line for line in (self.opus, self.video) if line is not None]
        if not own:
            return
        lines = sdp.wholeSdp.replace("\r", "").rstrip("\n").split("\n")
        media = [index for index, line in enumerate(lines) if line.startswith("m=")]
        if len(media) < 1 + len(own):
            logger.warning("PJSIP's SDP has %d media lines, not %d: no line of our own", len(media), 1 + len(own))
            return
        # Where PJSIP says its audio is (its c= line): our sockets listen on the same host.
        address = self.spec.public_address or next(
            (line.split()[-1] for line in lines if line.startswith("c=")), self.spec.bind_host or "0.0.0.0"
        )
        ours: list[str] = []
        if self.opus is not None:
            ours += opus_offer_lines(address, self.opus.port)
        if self.video is not None:
            ours += video_offer_lines(address, self.video.port)
        lines[media[1] :] = ours
        sdp.wholeSdp = "\r\n".join(lines) + "\r\n"

    def _on_video_picture(self, picture, seconds: float) -> None:
        publisher = self.publisher
        if publisher is not None:
            publisher.put_video(picture, seconds)

    def on_registration(self, code: int, reason: str) -> None:
        if self.registered is not None:
            return  # a refresh (or the un-REGISTER at the end)
        if code // 100 == 2:
            self.registered = True
            self.events.emit("registered", code=code)
        else:
            self.registered = False
            self.registration_error = f"Registration failed: {code} {reason}".strip()

    def on_call_state(self, info: pj.CallInfo) -> None:
        if info.state == pj.PJSIP_INV_STATE_EARLY:
            self._set_status(RINGING if info.lastStatusCode == 180 else SESSION_PROGRESS)
        elif info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.events.emit("far_end", uri=info.remoteUri, contact=info.remoteContact)
            if not any(media.status == pj.PJSUA_CALL_MEDIA_ACTIVE for media in info.media):
                # Answered with codecs we lack (PJSIP hangs up at once): a failed call, not an established one.
                self.codecs_refused = True
                return
            self.was_established = True
            self._set_status(ESTABLISHED)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            sip_reason = f"{info.lastStatusCode} {info.lastReason}"
            if self.was_established:
                self._set_status(FINISHED, self.reason or sip_reason)
            elif self.codecs_refused or info.lastStatusCode in NOT_ACCEPTABLE:
                far_end = sdp_codecs(self.remote_sdp) if self.remote_sdp else []
                self._set_status(FAILED, unsupported_codecs_reason(far_end, self._our_codecs(), sip_reason))
            else:
                self._set_status(FAILED, self.reason or sip_reason)

    def _our_codecs(self) -> list[str]:
        try:
            codecs = self.endpoint.codecEnum2()
        except pj.Error:
            return []
        audio = [codec.codecId.removesuffix("/1") for codec in codecs if codec.priority > 0]
        audio = [OPUS_CODEC, *audio] if self.spec.offer_opus else audio
        return audio + [H264_CODEC] if self.spec.has_video else audio

    def on_media_state(self, call: Call) -> None:
        """The call's media came up, or changed (a re-INVITE added or removed video, moved a port)."""
        info = call.getInfo()
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            has_video = self.video is not None and answered_h264(self.remote_sdp)
            self.video_target = video_destination(self.remote_sdp) if has_video else None
            self._follow_opus()
            if self.publisher is None and self.spec.publish_urls:
                # Published once the far end's audio flows: a call that is never answered makes no stream.
                self.publisher = CallPublisher(
                    self.spec.publish_urls, CLOCK_RATE, self._on_output_error, has_video, VIDEO_WAIT
                )
                self.publisher.start()
                self.sink.publisher = self.publisher
            elif self.publisher is not None:
                self.publisher.set_video(has_video)
            self._follow_video_injection()
            audio = call.getAudioMedia(index)
            audio.startTransmit(self.sink)
            self.source.startTransmit(audio)
            self.connected_media = audio
            stream = call.getStreamInfo(index)
            codec = OPUS_CODEC if self.opus_active else f"{stream.codecName}/{stream.codecClockRate}"
            self.events.emit("media", codec=f"{codec}, {H264_CODEC}" if has_video else codec)
            break  # PJSIP's one audio line (the lines of our own are never active in PJSIP)

    # --- commands ----------------------------------------------------------------------------
    def _hangup_requested(self) -> bool:
        try:
            command = self.commands.get_nowait()
        except queue.Empty:
            return False
        if command.get("cmd") == "hangup":
            return True
        self.commands.put(command)
        return False

    def _run_commands(self) -> None:
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            try:
                self._run_command(command)
            except pj.Error as error:
                self.events.emit("command_failed", cmd=command.get("cmd"), message=error.reason)

    def _run_command(self, command: dict) -> None:
        name = command.get("cmd")
        if name == "hangup":
            self.reason = command.get("reason", "Terminated")
            if self.call is not None and self.call.isActive():
                self.call.hangup(pj.CallOpParam(True))  # CANCEL before the answer, BYE after
            else:
                self._set_status(FINISHED if self.was_established else FAILED, self.reason)
        elif name == "dtmf":
            parameters = pj.CallSendDtmfParam()
            parameters.digits = command["digits"]
            parameters.method = DTMF_METHODS[command.get("method", "rfc2833")]
            self.call.sendDtmf(parameters)
            self.events.emit("dtmf_sent", digits=command["digits"])
        elif name == "inject":
            self._stop_feeder()
            feeder = PcmFeeder(command["source"], CLOCK_RATE, self._on_inject_end, loop=command.get("loop", False))
            feeder.start()
            self.source.feeder = feeder
            self.video_source = command["source"] if command.get("video") else None
            self._follow_video_injection()
        elif name == "inject_stop":
            self._stop_feeder()

    def _follow_opus(self) -> None:
        """The call's audio is our Opus line's while the far end's answer takes it, PJSIP's otherwise."""
        answered = answered_opus(self.remote_sdp, 1) if self.opus is not None else None
        self.opus_active = answered is not None
        if self.opus is not None:
            destination, payload_type = answered or (None, 0)
            self.opus.set_destination(destination, payload_type)
        if self.sink is not None:
            self.sink.opus = self.opus if self.opus_active else None
        if self.source is not None:
            self.source.opus = self.opus if self.opus_active else None

    def _follow_video_injection(self) -> None:
        """Sends the injected stream's video while the call has video (a re-INVITE may add or remove it)."""
        sending = self.video_sender is not None
        if sending and (self.video_target is None or self.video_source is None):
            self._stop_video_sender()
        elif not sending and self.video_target is not None and self.video_source is not None:
            receiver = self.video

            def send(rtp: bytes) -> None:
                if (target := self.video_target) is not None:  # where the far end takes video now
                    receiver.send(rtp, target)

            self.video_sender = H264Sender(self.video_source, send)
            self.video_sender.start()

    def _stop_feeder(self) -> None:
        feeder, self.source.feeder = self.source.feeder, None
        if feeder is not None:
            feeder.stop()
        self.video_source = None
        self._stop_video_sender()

    def _stop_video_sender(self) -> None:
        sender, self.video_sender = self.video_sender, None
        if sender is not None:
            sender.stop()

    def _on_inject_end(self, error: str | None) -> None:
        self.events.emit("inject_end", error=error)

    def _on_output_error(self, url: str, message: str) -> None:
        self.events.emit("output_error", url=url, message=message)

    # --- reporting ---------------------------------------------------------------------------
    def _set_status(self, status: str, reason: str = "") -> None:
        if self.status in (FINISHED, FAILED) or (status == self.status and not reason):
            return  # an ended call stays as it ended
        self.status = status
        self.events.emit("status", status=status, reason=reason)

    def _report_stats(self) -> None:
        sent = self.publisher.sent_bytes if self.publisher is not None else 0
        frames = self.sink.frames if self.sink is not None else 0
        pictures = self.video.pictures if self.video is not None else 0
        self.events.emit("stats", published_bytes=sent, received_frames=frames, received_pictures=pictures)


def read_commands(commands: queue.Queue, stdin=sys.stdin) -> None:
    for line in stdin:
        line = line.strip()
        if not line:
            continue
        try:
            commands.put(json.loads(line))
        except ValueError:
            logger.debug("ignored a command that is not JSON: %r", line)
    commands.put({"cmd": "hangup", "reason": "Terminated: the controller went away"})


def main() -> None:
    # Events own stdout; everything else that writes to fd 1 (PJSIP's console log) goes to stderr.
    events = Events(os.fdopen(os.dup(1), "w"))
    os.dup2(2, 1)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    spec = CallSpec(**json.loads(sys.stdin.readline()))
    commands: queue.Queue = queue.Queue()
    threading.Thread(target=read_commands, args=(commands,), name="commands", daemon=True).start()
    CallAgent(spec, events, commands).run()


if __name__ == "__main__":
    main()
