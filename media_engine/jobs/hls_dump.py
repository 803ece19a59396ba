"""Dumping a live stream's LL-HLS output to a folder while it is live (OME's :startHlsDump).

An `HlsDumper` follows the stream's LL-HLS media playlist on the engine's media HTTP port like any
player (plain reloads every ``poll_interval``), and writes what it sees into ``output_dir``: the init
segment(s), every complete segment the live playlist lists when the dump starts and every one after
(parts are a live-only device and are not kept), the media playlist of everything dumped
(``#EXT-X-PLAYLIST-TYPE:EVENT`` while it runs, ``VOD`` with ``#EXT-X-ENDLIST`` once done, so the
folder plays back as VOD), the requested master playlists, and optionally the info file (OME's
``HLSDumpInfo`` XML, see `write_info_file`).

Every file is written atomically (temporary file, then rename): a reader never sees half a file, and
a worker killed mid-dump leaves a consistent folder; the next worker continues it (`HlsDumper` reads
its own playlist back) after an ``#EXT-X-DISCONTINUITY``.

`HlsDumper.run` blocks: it returns when ``should_stop()`` says so, or when the stream ends (its
playlist shows ``#EXT-X-ENDLIST`` or is gone for ``gone_timeout`` seconds).
"""

from __future__ import annotations

import logging
import math
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import m3u8
import requests

from media_engine.hls.llhls import MASTER_PLAYLIST_NAME
from media_engine.internal_auth import redact_text
from media_engine.jobs.events import MediaEvent
from media_engine.jobs.source import SourceUnavailable

__all__ = ["DumpItem", "HlsDumper", "SourceUnavailable", "write_info_file"]

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.5  # seconds between playlist reloads (about one part)
GONE_TIMEOUT = 10.0  # a playlist that stays unreachable this long means the stream is gone
REQUEST_TIMEOUT = 10.0
DumpStatus = Literal["Running", "Completed", "Error"]
Outcome = Literal[MediaEvent.STOPPED, MediaEvent.COMPLETED]


@dataclass(frozen=True, slots=True)
class DumpItem:
    """One file written by the dump, as the info file lists it."""

    sequence: int
    written_at: float  # seconds since the epoch
    path: Path


@dataclass(frozen=True, slots=True)
class DumpedSegment:
    name: str
    duration: float
    init_name: str
    discontinuity: bool  # not contiguous with the previous one (missed segments, new init, resumed dump)
    program_date_time: datetime | None


def _iso(moment: datetime | float) -> str:
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_info_file(
    path: Path, *, stream: str, status: DumpStatus, items: Iterable[DumpItem], user_data: str = ""
) -> None:
    """OME's dump info file: ``<HLSDumpInfo>`` with UserData, Stream, Status and one Item per file written."""
    root = ET.Element("HLSDumpInfo")
    ET.SubElement(root, "UserData").text = user_data
    ET.SubElement(root, "Stream").text = stream
    ET.SubElement(root, "Status").text = status
    listed = ET.SubElement(root, "Items")
    for item in items:
        element = ET.SubElement(listed, "Item")
        ET.SubElement(element, "Seq").text = str(item.sequence)
        ET.SubElement(element, "Time").text = _iso(item.written_at)
        ET.SubElement(element, "File").text = str(item.path)
    ET.indent(root)
    write_atomically(path, ET.tostring(root, encoding="utf-8", xml_declaration=True))


def read_info_items(path: Path) -> list[DumpItem]:
    """The items of an existing info file (a resumed dump goes on numbering them)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return []
    items = []
    for element in root.iter("Item"):
        try:
            moment = datetime.fromisoformat(element.findtext("Time", "").replace("Z", "+00:00")).timestamp()
            items.append(DumpItem(int(element.findtext("Seq", "")), moment, Path(element.findtext("File", ""))))
        except ValueError:
            continue
    return items


class HlsDumper:
    """Follows ``base_url`` (``http://node:3333/{app}/{stream}/``) and dumps its LL-HLS output into ``output_dir``."""

    def __init__(
        self,
        base_url: str,
        output_dir: Path,
        *,
        should_stop: Callable[[], bool],
        playlists: Sequence[str] = (),
        info_file: Path | None = None,
        user_data: str = "",
        stream_path: str = "",
        headers: dict[str, str] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        poll_interval: float = POLL_INTERVAL,
        gone_timeout: float = GONE_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.output_dir = output_dir
        self.should_stop = should_stop
        self.playlists = list(playlists)
        self.info_file = info_file
        self.user_data = user_data
        self.stream_path = stream_path
        self.on_progress = on_progress
        self.poll_interval = poll_interval
        self.gone_timeout = gone_timeout
        self.clock = clock
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        self.chunklist_name = ""
        self.segments: list[DumpedSegment] = []
        self.items: list[DumpItem] = read_info_items(info_file) if info_file and info_file.exists() else []
        self.bytes_written = 0
        self._inits: set[str] = set()
        self._names: set[str] = set()
        self._last_msn: int | None = None  # the source's media sequence number of the last segment taken
        self._target_duration = 1
        self._resumed = False

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> Outcome:
        """Dump until stopped ("stopped") or until the stream ends ("completed")."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        try:
            master = self._first_master()
            self._write_masters(master)
            self._load_previous_dump()
            outcome = self._follow()
        except Exception:
            self._write_info("Error")
            raise
        finally:
            self.session.close()
        self._write_playlist(final=True)
        self._write_info("Completed")
        return outcome

    def _first_master(self) -> bytes:
        """The master playlist, whose variant names the media playlist; SourceUnavailable if the stream is not there."""
        deadline = self.clock() + self.gone_timeout
        while True:
            response = self._get(MASTER_PLAYLIST_NAME)
            if response is not None and response.status_code == 200:
                variants = m3u8.loads(response.text).playlists
                if not variants:
                    raise SourceUnavailable("the LL-HLS master playlist lists no media playlist")
                self.chunklist_name = variants[0].uri
                return response.content
            if self.clock() >= deadline or self.should_stop():
                status = response.status_code if response is not None else "no answer"
                raise SourceUnavailable(f"no LL-HLS playlist at {self.base_url}{MASTER_PLAYLIST_NAME} ({status})")
            time.sleep(self.poll_interval)

    def _follow(self) -> Outcome:
        last_seen = self.clock()
        while not self.should_stop():
            response = self._get(self.chunklist_name)
            if response is None or response.status_code != 200:
                if self.clock() - last_seen > self.gone_timeout:
                    logger.info("dump of %s: the stream is gone", self.base_url)
                    return MediaEvent.COMPLETED
            else:
                last_seen = self.clock()
                playlist = m3u8.loads(response.text)
                self._take(playlist)
                if playlist.is_endlist:
                    return MediaEvent.COMPLETED
            time.sleep(self.poll_interval)
        return MediaEvent.STOPPED

    def _get(self, name: str) -> requests.Response | None:
        try:
            return self.session.get(self.base_url + name, timeout=REQUEST_TIMEOUT)
        except requests.RequestException as error:
            logger.debug("dump of %s: %s", self.base_url, redact_text(str(error)))  # it names the query
            return None

    def _fetch(self, name: str) -> bytes:
        response = self._get(name)
        if response is None or response.status_code != 200:
            raise _Missed(name)
        return response.content

    # --- what a playlist brings -------------------------------------------------------------------

    def _take(self, playlist: m3u8.M3U8) -> None:
        self._target_duration = max(self._target_duration, int(playlist.target_duration or 1))
        last = self._last_msn
        new = []
        base = playlist.media_sequence or 0
        for index, segment in enumerate(playlist.segments):
            msn = base + index
            if not segment.uri or segment.duration is None or (last is not None and msn <= last):
                continue
            if segment.uri in self._names:  # dumped before this worker took over
                continue
            new.append((msn, segment))
        if not new:
            return
        for msn, segment in new:
            init = segment.init_section.uri if segment.init_section is not None else ""
            previous = self.segments[-1] if self.segments else None
            try:
                if init and init not in self._inits:
                    self._write_file(init, self._fetch(init))
                    self._inits.add(init)
                data = self._fetch(segment.uri)
            except _Missed as missed:  # gone from the engine already (we were slow): the next one continues
                logger.warning("dump of %s: missed %s", self.base_url, missed)
                continue
            if self._last_msn is None:
                discontinuity = self._resumed  # a worker died in between: something may be missing
            else:
                discontinuity = msn != self._last_msn + 1 or previous is None or init != previous.init_name
            self._last_msn = msn
            self._names.add(segment.uri)
            self.segments.append(
                DumpedSegment(segment.uri, float(segment.duration), init, discontinuity,
                              segment.current_program_date_time)
            )  # fmt: skip
            self._write_file(segment.uri, data)
        self._write_playlist(final=False)
        self._write_info("Running")
        if self.on_progress is not None:
            self.on_progress(len(self.segments), self.bytes_written)

    # --- output -----------------------------------------------------------------------------------

    def _write_file(self, name: str, data: bytes, *, listed: bool = True) -> None:
        path = self.output_dir / Path(name).name  # names come from the engine's playlists: never a path
        write_atomically(path, data)
        self.bytes_written += len(data)
        if listed:
            self.items.append(DumpItem(len(self.items), self.clock(), path))

    def _write_masters(self, master: bytes) -> None:
        for name in self.playlists:
            self._write_file(name, master, listed=not (self.output_dir / name).exists())

    def _load_previous_dump(self) -> None:
        """A dump started again (its worker died) goes on after what the folder already has."""
        path = self.output_dir / self.chunklist_name
        if not path.exists():
            return
        playlist = m3u8.loads(path.read_text(errors="replace"))
        for segment in playlist.segments:
            init = segment.init_section.uri if segment.init_section is not None else ""
            self._inits.add(init)
            self._names.add(segment.uri)
            self.segments.append(
                DumpedSegment(segment.uri, float(segment.duration), init, bool(segment.discontinuity),
                              segment.current_program_date_time)
            )  # fmt: skip
        self._target_duration = max(self._target_duration, int(playlist.target_duration or 1))
        self._resumed = bool(self.segments)

    def render_playlist(self, *, final: bool) -> str:
        """The media playlist of everything dumped so far (numbered from 0)."""
        longest = max((segment.duration for segment in self.segments), default=0.0)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:6",
            f"#EXT-X-TARGETDURATION:{max(self._target_duration, math.floor(longest + 0.5), 1)}",
            f"#EXT-X-PLAYLIST-TYPE:{'VOD' if final else 'EVENT'}",
            "#EXT-X-MEDIA-SEQUENCE:0",
            "#EXT-X-INDEPENDENT-SEGMENTS",
        ]
        init = None
        for position, segment in enumerate(self.segments):
            if position and segment.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if segment.init_name and segment.init_name != init:
                lines.append(f'#EXT-X-MAP:URI="{segment.init_name}"')
                init = segment.init_name
            if segment.program_date_time is not None:
                lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_iso(segment.program_date_time)}")
            lines += [f"#EXTINF:{segment.duration:.5f},", segment.name]
        if final:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def _write_playlist(self, *, final: bool) -> None:
        if not self.chunklist_name:
            return
        path = self.output_dir / self.chunklist_name
        first = not path.exists()
        self._write_file(self.chunklist_name, self.render_playlist(final=final).encode(), listed=first)

    def _write_info(self, status: DumpStatus) -> None:
        if self.info_file is not None:
            write_info_file(
                self.info_file, stream=self.stream_path, status=status, items=self.items, user_data=self.user_data
            )


class _Missed(Exception):
    """A file the playlist listed could not be fetched."""
