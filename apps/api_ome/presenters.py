"""Streams and their statistics in OME's JSON shapes (stream info, stats/current)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from apps.jobs.timestamps import ome_time  # the format lives with the jobs: the record info file uses it too
from apps.streams.choices import CONNECTION_KINDS
from apps.streams.models import Stream
from apps.transcoding.services import rendition_outputs
from media_engine.webrtc.transcode import OPUS_BITRATE, OPUS_CHANNELS, OPUS_RATE


def _track(track: dict) -> dict:
    if track["kind"] == "video":
        return {
            "id": track["id"],
            "type": "Video",
            "video": {
                "bitrate": str(track["bitrate"]),
                "bypass": False,
                "codec": track["codec"],
                "framerate": float(track["framerate"]),
                "hasBframes": track["has_bframes"],
                "keyFrameInterval": track["keyframe_interval"],
                "height": track["height"],
                "width": track["width"],
            },
        }
    return {
        "id": track["id"],
        "type": "Audio",
        "audio": {
            "bitrate": str(track["bitrate"]),
            "bypass": False,
            "channel": track["channels"],
            "channelLayout": track["channel_layout"],
            "codec": track["codec"],
            "samplerate": track["samplerate"],
        },
    }


def stream_info(stream: Stream) -> dict:
    """GET /v1/vhosts/{vhost}/apps/{app}/streams/{stream}.

    ``outputs`` lists what really plays: the input itself with the tracks its players get (every
    input track passed through to RTMP, HLS, LL-HLS and WebRTC, and the Opus track the engine
    encodes from AAC for WebRTC viewers, as OME's default profile shows it), then the renditions
    its output profiles' transcodes publish, each a stream of its own.
    """
    tracks = stream.input_tracks or []
    info = {
        "name": stream.name,
        "input": {
            "createdTime": ome_time(stream.created_at),
            "sourceType": stream.source_type,
            "tracks": [_track(track) for track in tracks],
        },
        "outputs": [{"name": stream.name, "tracks": _stream_output_tracks(tracks)}],
    }
    info["outputs"] += [_rendition_output(rendition, live, tracks) for rendition, live in rendition_outputs(stream)]
    return info


def _stream_output_tracks(input_tracks: list[dict]) -> list[dict]:
    out = [
        {"id": track["id"], "type": track["kind"].capitalize(), track["kind"]: {"bypass": True}}
        for track in input_tracks
    ]
    aac = any(track["kind"] == "audio" and track["codec"] == "AAC" for track in input_tracks)
    return out + _webrtc_audio(out) if aac else out


def _webrtc_audio(tracks: list[dict]) -> list[dict]:
    """The Opus track WebRTC viewers of an AAC stream get (media_engine.webrtc.fanout encodes it:
    WebRTC carries no AAC), numbered after ``tracks``."""
    opus = {"bitrate": str(OPUS_BITRATE), "bypass": False, "channel": OPUS_CHANNELS, "codec": "OPUS"}
    track_id = max((track["id"] for track in tracks), default=-1) + 1
    return [{"id": track_id, "type": "Audio", "audio": {**opus, "samplerate": OPUS_RATE}}]


def _rendition_output(rendition: dict, live: Stream | None, input_tracks: list[dict]) -> dict:
    """A transcoded rendition: its measured tracks once live, else what its encodes ask for; with
    the Opus track of its WebRTC viewers when its audio is AAC."""
    tracks = []
    aac = False
    for kind in ("video", "audio"):
        encode = rendition.get(kind)
        if not encode:
            continue
        measured = next((track for track in (live.input_tracks if live else []) if track["kind"] == kind), None)
        if encode == "bypass":
            tracks.append({"id": len(tracks), "type": kind.capitalize(), kind: {"bypass": True}})
            source = next((track for track in input_tracks if track["kind"] == kind), None)
            aac = aac or (kind == "audio" and source is not None and source["codec"] == "AAC")
        elif measured is not None:
            tracks.append({**_track(measured), "id": len(tracks)})
            aac = aac or (kind == "audio" and measured["codec"] == "AAC")
        else:
            planned = {"bitrate": str(encode.get("bitrate", "")), "bypass": False, "codec": encode["codec"].upper()}
            if kind == "video":
                planned |= {key: encode[key] for key in ("width", "height", "framerate") if encode.get(key)}
            else:
                planned |= {key: encode[key] for key in ("samplerate", "channel") if encode.get(key)}
            tracks.append({"id": len(tracks), "type": kind.capitalize(), kind: planned})
            aac = aac or (kind == "audio" and planned["codec"] == "AAC")
    return {"name": rendition["stream"], "tracks": tracks + _webrtc_audio(tracks) if aac else tracks}


def _latest(values: Iterable[datetime | None]) -> datetime | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


def stats(created: datetime, streams: QuerySet[Stream] | list[Stream]) -> dict:
    """OME's stats/current body over a set of stream rows (one stream, or every stream of an app/vhost).

    Totals add up every publish session ever recorded; connections are those of live streams now.
    """
    streams = list(streams)
    live = [stream for stream in streams if stream.is_live]
    connections = {kind: 0 for kind in CONNECTION_KINDS}
    for stream in live:
        for kind, count in stream.connection_counts().items():
            connections[kind] += count
    total_connections = sum(connections.values())
    peak = max(streams, key=lambda stream: stream.max_total_connections, default=None)
    max_connections = max(total_connections, peak.max_total_connections if peak else 0)
    total_in = sum(stream.total_bytes_in for stream in streams)
    total_out = sum(stream.total_bytes_out for stream in streams)
    seconds = max((timezone.now() - created).total_seconds(), 1.0)
    last_updated = _latest(stream.updated_at for stream in streams) or created
    return {
        "connections": connections,
        "createdTime": ome_time(created),
        "lastRecvTime": ome_time(_latest(stream.last_recv_time for stream in streams) or created),
        "lastSentTime": ome_time(_latest(stream.last_sent_time for stream in streams) or created),
        "lastUpdatedTime": ome_time(last_updated),
        "lastThroughputIn": sum(stream.last_throughput_in for stream in live),
        "lastThroughputOut": sum(stream.last_throughput_out for stream in live),
        "maxTotalConnectionTime": ome_time((peak.max_total_connection_time if peak else None) or created),
        "maxTotalConnections": max_connections,
        "totalBytesIn": total_in,
        "totalBytesOut": total_out,
        "totalConnections": total_connections,
        "avgThroughputIn": int(total_in * 8 / seconds),
        "avgThroughputOut": int(total_out * 8 / seconds),
        "maxThroughputIn": max((stream.max_throughput_in for stream in streams), default=0),
        "maxThroughputOut": max((stream.max_throughput_out for stream in streams), default=0),
    }
