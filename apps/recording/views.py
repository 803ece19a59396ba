"""Operator pages for recordings (inside the admin): the files each record wrote with size and
duration, a player (MP4 straight from the file by HTTP range requests, MPEG-TS through hls.js over a
one-segment playlist) and downloads. Files are read only from inside the media root."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from pathlib import Path

from django.contrib import admin
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from apps.jobs.paths import UnsafePath, confine
from apps.recording.models import Record, RecordFile

CHUNK = 256 * 1024
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CONTENT_TYPES = {".mp4": "video/mp4", ".ts": "video/mp2t", ".m4a": "audio/mp4"}


def file_on_disk(file: RecordFile) -> Path:
    """The recorded file's path, if it lies inside the media root and still exists; 404 otherwise."""
    try:
        path = confine(file.path)
    except UnsafePath:
        raise Http404("the file is outside the media root") from None
    if not path.is_file():
        raise Http404("the file is gone from disk")
    return path


def _read(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def serve_range(request: HttpRequest, path: Path, download: bool = False) -> HttpResponse:
    """``path`` whole (200) or the one byte range a player asks for (206; 416 when unsatisfiable):
    browsers seek in an MP4 by range requests."""
    size = path.stat().st_size
    content_type = CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
    content_type = content_type or "application/octet-stream"
    match = RANGE.match(request.headers.get("Range", "").strip())
    if not match or match.groups() == ("", ""):
        response = FileResponse(path.open("rb"), content_type=content_type, as_attachment=download, filename=path.name)
        response["Accept-Ranges"] = "bytes"
        return response
    first, last = match.groups()
    if first == "":  # "bytes=-N": the last N bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    response = StreamingHttpResponse(_read(path, start, end - start + 1), status=206, content_type=content_type)
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Length"] = str(end - start + 1)
    response["Accept-Ranges"] = "bytes"
    if download:
        response["Content-Disposition"] = f'attachment; filename="{path.name}"'
    return response


def recording_files(request: HttpRequest) -> HttpResponse:
    """Every file the records wrote (newest first), optionally of one record (?record=<pk>)."""
    files = RecordFile.objects.select_related("record__application__virtual_host").order_by("-started_at")
    record = None
    if request.GET.get("record", "").isdigit():
        record = get_object_or_404(Record, pk=request.GET["record"])
        files = files.filter(record=record)
    rows = []
    for file in files[:500]:
        try:
            on_disk = confine(file.path).is_file()
        except UnsafePath:
            on_disk = False
        rows.append({"file": file, "name": Path(file.path).name, "on_disk": on_disk})
    context = {
        **admin.site.each_context(request),
        "title": f"Recordings of {record}" if record else "Recordings",
        "record": record,
        "rows": rows,
    }
    return render(request, "admin/recording/files.html", context)


def recording_file(request: HttpRequest, pk: int) -> HttpResponse:
    """The file's bytes (range requests answered); ?download=1 as an attachment."""
    file = get_object_or_404(RecordFile, pk=pk)
    return serve_range(request, file_on_disk(file), download=request.GET.get("download") == "1")


def recording_playlist(request: HttpRequest, pk: int) -> HttpResponse:
    """An MPEG-TS recording as a finished one-segment HLS playlist, for hls.js."""
    file = get_object_or_404(RecordFile, pk=pk)
    file_on_disk(file)
    seconds = max(file.duration_ms / 1000, 1)
    source = reverse("admin:recording_file", args=[file.pk])
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{int(seconds) + 1}",
             "#EXT-X-PLAYLIST-TYPE:VOD", f"#EXTINF:{seconds:.3f},", source, "#EXT-X-ENDLIST", ""]  # fmt: skip
    return HttpResponse("\n".join(lines), content_type="application/vnd.apple.mpegurl")


def recording_player(request: HttpRequest, pk: int) -> HttpResponse:
    file = get_object_or_404(RecordFile.objects.select_related("record__application__virtual_host"), pk=pk)
    file_on_disk(file)
    is_ts = Path(file.path).suffix.lower() == ".ts"
    context = {
        **admin.site.each_context(request),
        "title": f"Play {Path(file.path).name}",
        "file": file,
        "name": Path(file.path).name,
        "is_ts": is_ts,
        "source": reverse("admin:recording_playlist" if is_ts else "admin:recording_file", args=[file.pk]),
    }
    return render(request, "admin/recording/player.html", context)
