"""StreamHub rows in WCS's JSON shapes: Stream, Recorder, Transponder, RtmpAgent, RtspAgent, VOD, MPEG-TS."""

from __future__ import annotations

from apps.api_wcs.app_keys import app_key_of
from apps.jobs.choices import JobState
from apps.pull.models import Pull
from apps.push.models import Push
from apps.recording.models import Record
from apps.streams.models import Stream

# WCS's AAC name in the Stream object ("audioCodec": "mpeg4-generic").
AUDIO_CODECS = {"AAC": "mpeg4-generic", "OPUS": "opus", "MP3": "mp3"}
# Media job state -> WCS agent status.
AGENT_STATUS = {
    JobState.READY: "PENDING",
    JobState.STARTED: "PROCESSED_LOCAL",
    JobState.RETRYING: "FAILED",
    JobState.STOPPING: "STOPPING",
    JobState.STOPPED: "STOPPED",
    JobState.ERROR: "FAILED",
}
PULL_STATUS = {**AGENT_STATUS, JobState.STARTED: "PUBLISHING", JobState.READY: "NEW"}


def session_id(stream: Stream) -> str:
    """WCS's sessionId: ``/client:port/server:port``."""
    local = f"{stream.node.address}:{stream.node.player_rtmp_port}" if stream.node else ""
    return f"/{stream.remote_address}/{local}"


def stream_to_wcs(stream: Stream, record: Record | None = None) -> dict:
    tracks = stream.input_tracks or []
    video = next((track for track in tracks if track["kind"] == "video"), None)
    audio = next((track for track in tracks if track["kind"] == "audio"), None)
    bitrate = sum(int(track.get("bitrate") or 0) for track in tracks) // 1000
    current_file = record.files.order_by("-sequence").first() if record is not None else None
    return {
        "appKey": app_key_of(stream.application),
        "sessionId": session_id(stream),
        "mediaSessionId": str(stream.media_session_id),
        "name": stream.name,
        "published": True,
        "hasVideo": video is not None,
        "hasAudio": audio is not None,
        "status": "PUBLISHING",
        "sdp": "",
        "audioCodec": AUDIO_CODECS.get(audio["codec"], audio["codec"].lower()) if audio else "",
        "videoCodec": video["codec"] if video else "",
        "record": record is not None,
        "recordName": current_file.path.rsplit("/", 1)[-1] if current_file else "",
        "width": video["width"] if video else 0,
        "height": video["height"] if video else 0,
        "bitrate": bitrate,
        "minBitrate": 0,
        "maxBitrate": 0,
        "quality": 0,
        "history": False,
        "nodeId": stream.node.node_id if stream.node else "",
        "sourceType": stream.source_type,
        "custom": {},
        "customMap": {},
    }


def recorder_to_wcs(record: Record) -> dict:
    current_file = record.files.order_by("-sequence").first()
    return {
        "mediaSessionId": record.record_id,
        "streamName": record.stream_name,
        "status": AGENT_STATUS[record.state],
        "fileName": current_file.path.rsplit("/", 1)[-1] if current_file else "",
        "recordBytes": record.total_record_bytes,
        "recordTime": record.total_record_time_ms,
        "error": record.error,
    }


def transponder_to_wcs(push: Push) -> dict:
    return {
        "mediaSessionId": push.push_id,
        "streamName": push.stream_name,
        "rtmpUrl": push.target,
        "status": AGENT_STATUS[push.state],
        "muted": push.audio_muted,
        "soundEnabled": bool(push.sound_file),
        "sentBytes": push.total_sent_bytes,
        "error": push.error,
    }


# An MPEG-TS listener whose publisher has sent nothing yet (WCS's word for it): its port is open.
MPEGTS_WAITING = "CONNECTED"


def pull_status(pull: Pull) -> str:
    """A listener is PUBLISHING only once data flows (its stream went live), CONNECTED before."""
    if pull.source_type == "Mpegts" and pull.state in (JobState.READY, JobState.STARTED) and pull.started_at is None:
        return MPEGTS_WAITING
    return PULL_STATUS[pull.state]


def pull_agent_to_wcs(pull: Pull, uri: str | None = None) -> dict:
    """RtmpAgent, RtspAgent, VOD and MPEG-TS objects share these fields (``uri``: the address the
    caller uses, when it is not the pull's own URL)."""
    return {
        "uri": uri if uri is not None else (pull.urls[0] if pull.urls else ""),
        "localStreamName": pull.stream_name,
        "localMediaSessionId": str(pull.media_session_id),
        "mediaSessionId": str(pull.media_session_id),
        "status": pull_status(pull),
        "receivedBytes": pull.received_bytes,
        "error": pull.error,
    }
