"""Where the packagers keep segments and parts: in memory, or as files out of the Python heap.

A live stream's HLS and LL-HLS windows hold tens of megabytes (a 60 s LL-HLS window of a 2.6 Mb/s
stream is about 20 MB). `FolderFiles` writes them as files in a folder of their own (on a tmpfs such
as /dev/shm they cost RAM but not the engine's heap, and no disk I/O), and `open`s them for each
request (the media HTTP server sends them with sendfile, never through the heap); `MemoryFiles` keeps
them in a dict (tests, tools). A segmenter owns one `Files` and `release()`s it when its stream's
packaging ends.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

logger = logging.getLogger(__name__)

_IOV_MAX = 1024


class Files(Protocol):
    """Named byte strings that a segmenter writes once (or appends to) and players read."""

    def put(self, name: str, data: bytes) -> None: ...

    def put_chunks(self, name: str, chunks: list[bytes]) -> None:
        """`put` of the chunks back to back (without joining them first where possible)."""

    def append(self, name: str, data: bytes) -> None:
        """Add to a file being built: not readable until `seal`."""

    def seal(self, name: str) -> None:
        """The appended file is complete: readable from now on."""

    def get(self, name: str) -> bytes | None: ...

    def open(self, name: str) -> BinaryIO | None:
        """A complete file opened for reading (readable to its end even if deleted meanwhile), or None."""

    def delete(self, name: str) -> None: ...

    def release(self) -> None: ...


class MemoryFiles:
    """Files kept in the Python heap."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._building: dict[str, list[bytes]] = {}

    def put(self, name: str, data: bytes) -> None:
        self._data[name] = data

    def put_chunks(self, name: str, chunks: list[bytes]) -> None:
        self._data[name] = b"".join(chunks)

    def append(self, name: str, data: bytes) -> None:
        self._building.setdefault(name, []).append(data)

    def seal(self, name: str) -> None:
        self._data[name] = b"".join(self._building.pop(name, []))

    def get(self, name: str) -> bytes | None:
        return self._data.get(name)

    def open(self, name: str) -> BinaryIO | None:
        data = self._data.get(name)
        return io.BytesIO(data) if data is not None else None

    def delete(self, name: str) -> None:
        self._data.pop(name, None)

    def release(self) -> None:
        self._data.clear()
        self._building.clear()


class FolderFiles:
    """Files in a folder of their own (created here, removed by `release`).

    Names are only ever made by the segmenters (never taken from a request): a name that is not a
    plain file name is refused all the same.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._names: set[str] = set()  # what is complete and readable
        self._broken: set[str] = set()  # files being appended to that a write failed for
        self._released = False
        self._warned = False

    def _failed(self, name: str, error: OSError) -> None:
        # A full tmpfs must not stop the stream: this file is missing (404), later ones may fit.
        if not self._warned:
            self._warned = True
            logger.warning("cannot write %s in %s: %s", name, self.folder, error)
        try:
            os.unlink(self._path(name))
        except OSError:
            pass

    def _path(self, name: str) -> str:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"not a file name: {name!r}")
        return os.path.join(self.folder, name)

    def put(self, name: str, data: bytes) -> None:
        self.put_chunks(name, [data])

    def put_chunks(self, name: str, chunks: list[bytes]) -> None:
        if self._released:
            return
        try:
            fd = os.open(self._path(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                # writev takes at most IOV_MAX buffers, and may write less than asked.
                for start in range(0, len(chunks), _IOV_MAX):
                    batch = chunks[start : start + _IOV_MAX]
                    written = os.writev(fd, batch)
                    if written < sum(len(chunk) for chunk in batch):
                        _write_all(fd, b"".join(batch)[written:])
            finally:
                os.close(fd)
        except OSError as error:
            self._failed(name, error)
            return
        self._names.add(name)

    def append(self, name: str, data: bytes) -> None:
        if self._released or name in self._broken:
            return  # (a piece is missing: the rest must not make a truncated file again)
        try:
            fd = os.open(self._path(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
        except OSError as error:
            self._broken.add(name)
            self._failed(name, error)

    def seal(self, name: str) -> None:
        # (an append that failed removed the file: the segment is missing rather than truncated)
        if name in self._broken:
            self._broken.discard(name)
        elif not self._released and os.path.exists(self._path(name)):
            self._names.add(name)

    def get(self, name: str) -> bytes | None:
        file = self.open(name)
        if file is None:
            return None
        with file:
            return file.read()

    def open(self, name: str) -> BinaryIO | None:
        if name not in self._names:
            return None
        try:
            return open(self._path(name), "rb", buffering=0)  # (the caller closes it)
        except FileNotFoundError:  # released meanwhile
            return None

    def delete(self, name: str) -> None:
        self._names.discard(name)
        if not self._released:
            try:
                os.unlink(self._path(name))
            except FileNotFoundError:
                pass

    def release(self) -> None:
        self._released = True
        self._names.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# /dev/shm is used when it has at least this much room.
MIN_TMPFS_BYTES = 1 << 30


def _tmpfs() -> Path | None:
    shm = Path("/dev/shm")
    try:
        stats = os.statvfs(shm)
    except OSError:
        return None
    if not os.access(shm, os.W_OK) or stats.f_bavail * stats.f_frsize < MIN_TMPFS_BYTES:
        return None
    return shm


class FileFolder:
    """The folder of one engine process under which each segmenter gets a `FolderFiles` of its own.

    ``base`` None: a tmpfs (/dev/shm) when there is one with room (containers often have 64 MB
    there), else the system's temporary folder. The
    folder of a node is named after its process id; folders left by processes that died are removed.
    """

    PREFIX = "streamhub-media-"

    def __init__(self, base: Path | None = None) -> None:
        if base is None:
            base = _tmpfs() or Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        self._remove_stale(base)
        self.root = Path(tempfile.mkdtemp(prefix=f"{self.PREFIX}{os.getpid()}-", dir=base))
        self._count = 0

    def _remove_stale(self, base: Path) -> None:
        for folder in base.glob(f"{self.PREFIX}*-*"):
            pid = folder.name.removeprefix(self.PREFIX).split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
                logger.info("removing %s, left by an engine that is gone", folder)
                shutil.rmtree(folder, ignore_errors=True)

    def files(self, label: str) -> FolderFiles:
        """A new, empty folder of files (``label``: a readable part of its name)."""
        self._count += 1
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:80]
        return FolderFiles(self.root / f"{self._count}-{safe}")

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
