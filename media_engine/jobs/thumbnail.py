"""Thumbnails of live streams (OME's ``/{app}/{stream}/thumb.jpg`` and ``.png``): where they live and
how they are written and served.

A transcode job (a Celery worker) encodes pictures and writes them with `ThumbnailStore.write`
into ``{root}/{vhost}/{app}/{stream}/thumb.{jpg,png}``, replacing the file atomically; the engine
node serves the latest one over its media HTTP port with `thumbnail_handler`. The root is a folder
both can reach (the media root). A picture older than ``max_age`` seconds is stale (its job is
gone) and not served.
"""

from __future__ import annotations

import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
from aiohttp import web

IMAGE_FORMATS = {"jpeg": "jpg", "png": "png"}  # OME's image codec -> file extension
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png"}
JPEG_QUALITY = 3  # FFmpeg's MJPEG qscale: 2 (best) .. 31
DEFAULT_MAX_AGE = 30.0


class ThumbnailStore:
    """The thumbnail folder: one file per stream and image format."""

    def __init__(self, root: str | Path, max_age: float = DEFAULT_MAX_AGE) -> None:
        self.root = Path(root)
        self.max_age = max_age

    def path(self, vhost: str, app: str, stream: str, extension: str) -> Path:
        if extension not in CONTENT_TYPES:
            raise ValueError(f"thumbnails are jpg or png, not {extension!r}")
        for part in (vhost, app, stream):
            if not part or part in (".", "..") or "/" in part or "\\" in part or "\0" in part:
                raise ValueError(f"{part!r} cannot name a thumbnail folder")
        return self.root / vhost / app / stream / f"thumb.{extension}"

    def write(self, path: Path, data: bytes) -> None:
        """Replace ``path`` with ``data`` at once: a reader sees the old picture or the new one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".thumb-", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def latest(self, vhost: str, app: str, stream: str, extension: str) -> bytes | None:
        """The current picture, or None if there is none or it is stale."""
        try:
            path = self.path(vhost, app, stream, extension)
            if time.time() - path.stat().st_mtime > self.max_age:
                return None
            return path.read_bytes()
        except (OSError, ValueError):
            return None


def thumbnail_handler(server, store: ThumbnailStore):
    """The aiohttp handler of ``GET /{app}/{stream}/thumb.{ext}`` on a `MediaHttpServer`."""

    async def handle_thumbnail(request: web.Request) -> web.StreamResponse:
        target = await server.resolve_stream(request)
        extension = request.match_info["ext"]
        data = None
        if target is not None:
            data = store.latest(target.key.vhost, target.key.app, target.key.name, extension)
        if data is None:
            raise web.HTTPNotFound(text="thumbnail not found\n")
        if target.stream is not None:
            server.count_sent(request, target.stream, len(data))
        return web.Response(
            body=data, content_type=CONTENT_TYPES[extension], headers={"Cache-Control": "no-cache, no-store"}
        )

    return handle_thumbnail


class ImageEncoder:
    """Encodes decoded pictures as JPEG or PNG at a fixed size (None: the picture's own, or kept
    in proportion when only one side is given)."""

    def __init__(self, codec: str, width: int | None = None, height: int | None = None) -> None:
        if codec not in IMAGE_FORMATS:
            raise ValueError(f"image codec must be one of {sorted(IMAGE_FORMATS)}, not {codec!r}")
        self.codec = codec
        self.extension = IMAGE_FORMATS[codec]
        self.width = width if width and width > 0 else None
        self.height = height if height and height > 0 else None

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        return fit_size(width, height, self.width, self.height)

    def encode(self, frame: av.VideoFrame) -> bytes:
        width, height = self.size_for(frame.width, frame.height)
        if self.codec == "jpeg":
            encoder = av.CodecContext.create("mjpeg", "w")
            pixel_format = "yuvj420p"
            encoder.options = {"qscale": str(JPEG_QUALITY)}
            encoder.flags |= 0x0002  # AV_CODEC_FLAG_QSCALE: the fixed quality above
        else:
            encoder = av.CodecContext.create("png", "w")
            pixel_format = "rgb24"
        encoder.width, encoder.height = width, height
        encoder.pix_fmt = pixel_format
        encoder.time_base = Fraction(1, 25)  # one picture: any time base does
        picture = frame.reformat(width=width, height=height, format=pixel_format)
        picture.pts = None
        packets = encoder.encode(picture) + encoder.encode(None)
        if not packets:
            raise ValueError(f"the {self.codec} encoder produced nothing")
        return bytes(packets[0])


def fit_size(width: int, height: int, wanted_width: int | None, wanted_height: int | None) -> tuple[int, int]:
    """The output size for a ``width`` x ``height`` picture: as wanted, the missing side in proportion,
    even numbers (4:2:0 chroma), at least 2x2."""
    if wanted_width and wanted_height:
        out_width, out_height = wanted_width, wanted_height
    elif wanted_width:
        out_width, out_height = wanted_width, round(height * wanted_width / width)
    elif wanted_height:
        out_width, out_height = round(width * wanted_height / height), wanted_height
    else:
        out_width, out_height = width, height
    return max(2, out_width - out_width % 2), max(2, out_height - out_height % 2)
