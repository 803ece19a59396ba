"""Segments and parts as files out of the Python heap, gone with their stream's packaging."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from media_engine.control import ApplicationConfig
from media_engine.hls import segmenter as ts_segmenter
from media_engine.hls.filesource import push_packets, read_packets
from media_engine.hls.llhls import LlHlsPackager
from media_engine.hls.segmenter import HlsPackager, HlsSegmenter
from media_engine.hls.store import FileFolder, FolderFiles, MemoryFiles
from media_engine.registry import StreamKey, StreamRegistry

CONFIG = ApplicationConfig(
    "default", "app", hls_segment_duration=2.0, hls_segment_count=2, llhls_segment_duration=2.0, llhls_segment_count=2
)
KEY = StreamKey("default", "app", "cam")


def test_hls_and_llhls_output_are_files_that_go_with_the_packaging(av_flv: Path, tmp_path: Path) -> None:
    packets = read_packets(av_flv)

    async def lookup(key: StreamKey) -> ApplicationConfig:
        return CONFIG

    async def main() -> None:
        folder = FileFolder(tmp_path)
        registry = StreamRegistry()
        hls = HlsPackager(registry, lookup, linger=0.3, folder=folder)
        llhls = LlHlsPackager(registry, lookup, linger=0.3, folder=folder)
        hls.attach()
        llhls.attach()
        stream = registry.open(KEY, "rtmp")
        await asyncio.sleep(0.05)  # (the application lookup)
        await push_packets(stream, packets, realtime=False)

        ts = hls.get(KEY)
        fmp4 = llhls.get(KEY)
        assert ts is not None and fmp4 is not None
        on_disk = {path.name: path.read_bytes() for path in folder.root.rglob("*") if path.is_file()}
        # TS: the playlist's window plus one, each file what a player gets.
        retained = [name for name in on_disk if name.endswith(".ts")]
        assert len(retained) == CONFIG.hls_segment_count + 1
        for segment in ts.segments:
            assert on_disk[segment.name] == segment.data and len(segment.data) == segment.size > 0
        # LL-HLS: init segment, complete segments (their parts back to back) and the listed parts.
        assert on_disk[fmp4.init_name] == fmp4.file(fmp4.init_name)
        newest = fmp4.segments[-1]
        assert newest.parts and on_disk[newest.name] == b"".join(on_disk[part.name] for part in newest.parts)
        assert fmp4.file(newest.name) == on_disk[newest.name]
        current = fmp4.current_segment
        assert current is not None and fmp4.file(current.name) is None  # still being built: not served

        registry.close(stream)
        await asyncio.sleep(0.6)  # past the linger: packaging dropped, files removed
        assert hls.get(KEY) is None and llhls.get(KEY) is None
        assert [path for path in folder.root.rglob("*") if path.is_file()] == []
        await hls.close()
        await llhls.close()
        folder.close()
        assert not folder.root.exists()

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["memory", "folder"])
def test_files_are_readable_once_complete_and_gone_once_deleted(kind: str, tmp_path: Path) -> None:
    files = MemoryFiles() if kind == "memory" else FolderFiles(tmp_path / "f")
    files.put("a.ts", b"aaa")
    files.append("s.m4s", b"1")
    files.append("s.m4s", b"2")
    assert files.get("a.ts") == b"aaa" and files.get("s.m4s") is None  # not sealed yet
    files.seal("s.m4s")
    assert files.get("s.m4s") == b"12" and files.get("nothing") is None
    files.delete("a.ts")
    assert files.get("a.ts") is None
    files.release()
    assert files.get("s.m4s") is None
    files.put("late.ts", b"x")  # a packager finishing after the release: no file left behind
    assert kind == "memory" or not (tmp_path / "f").exists()


def test_folder_files_refuse_names_that_are_not_plain_file_names(tmp_path: Path) -> None:
    files = FolderFiles(tmp_path / "f")
    for bad in ("../x.ts", "a/b.ts", "", ".."):
        with pytest.raises(ValueError):
            files.put(bad, b"x")


def test_folders_left_by_engines_that_died_are_removed(tmp_path: Path) -> None:
    dead = next(pid for pid in range(4_000_000, 4_100_000) if not Path(f"/proc/{pid}").exists())
    left = tmp_path / f"{FileFolder.PREFIX}{dead}-x1"
    (left / "1-hls-cam").mkdir(parents=True)
    (left / "1-hls-cam" / "seg_1.ts").write_bytes(b"x")
    alive = tmp_path / f"{FileFolder.PREFIX}{os.getppid()}-x2"
    alive.mkdir()
    folder = FileFolder(tmp_path)
    assert not left.exists() and alive.exists() and folder.root.is_dir()
    assert folder.root.name.startswith(f"{FileFolder.PREFIX}{os.getpid()}-")
    folder.close()


def test_a_ts_segment_goes_to_its_file_as_it_grows_and_is_served_once_complete(
    av_flv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ts_segmenter, "SEGMENT_SPILL_BYTES", 4096)  # (the test pattern compresses well)
    packets = read_packets(av_flv)
    files = FolderFiles(tmp_path / "f")
    segmenter = HlsSegmenter(CONFIG, files=files)
    media = [packet for packet in packets if not packet.config]
    for packet in [packet for packet in packets if packet.config] + [p for p in media if p.dts < 1500]:
        segmenter.feed(packet)
    # 1.5 s into the first 2 s segment: most of it is already in its file, none of it is served yet.
    assert segmenter.segments == [] and segmenter.playlist() is None
    (building,) = (tmp_path / "f").iterdir()
    assert building.stat().st_size > 4 * 4096
    assert files.get(building.name) is None
    for packet in [p for p in media if 1500 <= p.dts < 3000]:
        segmenter.feed(packet)
    segmenter.finish()
    first = segmenter.segment(building.name)
    assert first is not None and first.sequence == 0 and first.data == building.read_bytes()
    assert first.size == len(first.data) and first.data[0] == 0x47 and len(first.data) % 188 == 0
    segmenter.release()


def test_a_file_being_built_that_loses_a_piece_is_missing_not_truncated(tmp_path: Path) -> None:
    files = FolderFiles(tmp_path / "f")
    files.append("s.ts", b"1")
    (tmp_path / "f" / "s.ts").unlink()
    (tmp_path / "f").rmdir()  # (a full tmpfs: this piece cannot be written)
    files.append("s.ts", b"2")
    (tmp_path / "f").mkdir()  # room again: the rest of the file would fit
    files.append("s.ts", b"3")
    files.seal("s.ts")
    assert files.get("s.ts") is None and not (tmp_path / "f" / "s.ts").exists()
    files.append("t.ts", b"4")  # the next file is there
    files.seal("t.ts")
    assert files.get("t.ts") == b"4"


def test_a_file_that_cannot_be_written_is_missing_and_the_stream_goes_on(tmp_path: Path) -> None:
    files = FolderFiles(tmp_path / "f")
    (tmp_path / "f").rmdir()  # (as a full tmpfs would: every write fails)
    files.put("a.ts", b"x")
    files.put_chunks("g", [b"1", b"2"])
    files.append("s.m4s", b"1")
    files.seal("s.m4s")
    assert files.get("a.ts") is None and files.get("g") is None and files.get("s.m4s") is None
    (tmp_path / "f").mkdir()  # room again: later files are there
    files.put("b.ts", b"y")
    assert files.get("b.ts") == b"y"
