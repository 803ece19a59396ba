"""The Transcoder against a real engine node (in a process of its own, see test_pull): renditions
published back into the engine at their sizes and frame rates (judged by ffprobe), a thumbnail
refreshed while live and removed at the end, CPU time reported; encodings RTMP cannot carry are
refused; thumbnails' store and the master playlist text."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import pytest

from media_engine.hls.master import VariantStream, render_master_playlist
from media_engine.jobs.thumbnail import ThumbnailStore
from media_engine.jobs.transcode import (
    BYPASS,
    AudioEncoding,
    ImageOutput,
    Rendition,
    SourceUnavailable,
    TranscodeProgress,
    Transcoder,
    VideoEncoding,
)

from .conftest import ffprobe, publish_command
from .test_pull import EngineProcess


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineProcess]:
    node = EngineProcess()
    yield node
    node.close()


@pytest.fixture
def source(engine: EngineProcess) -> Iterator[str]:
    """A 320x240 25 fps test pattern with AAC audio, live in the engine as ``src``."""
    process = subprocess.Popen(publish_command(engine.url("src"), None), stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while engine.session("src") is None:
        assert process.poll() is None and time.monotonic() < deadline, "the source did not go live"
        time.sleep(0.2)
    yield engine.url("src")
    process.terminate()
    process.wait(10)


def wait_until(condition, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def picture_size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def test_renditions_and_a_thumbnail_while_live(engine, source, tmp_path):
    thumb = tmp_path / "default" / "app" / "src" / "thumb.jpg"
    states: list[str] = []
    progress: list[TranscodeProgress] = []
    stop = threading.Event()
    transcoder = Transcoder(
        source,
        [
            Rendition("small", engine.url("src_small"), VideoEncoding(bitrate=150_000, height=120, framerate=12.5,
                                                                      preset="ultrafast"), AudioEncoding(bitrate=48_000)),
            Rendition("copy", engine.url("src_copy"), BYPASS, BYPASS),
        ],
        [ImageOutput("jpeg", thumb, width=64, framerate=2)],
        should_stop=stop.is_set,
        on_state=lambda state, error: states.append(state),
        on_progress=progress.append,
        store=ThumbnailStore(tmp_path),
    )  # fmt: skip
    thread = threading.Thread(target=transcoder.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: "started" in states, what="both renditions connected")
        small = {s["codec_type"]: s for s in ffprobe(engine.url("src_small"))["streams"]}
        assert (small["video"]["codec_name"], small["video"]["width"], small["video"]["height"]) == ("h264", 160, 120)
        assert Fraction(small["video"]["r_frame_rate"]) == Fraction(25, 2)
        assert small["audio"]["codec_name"] == "aac"
        copied = {s["codec_type"]: s for s in ffprobe(engine.url("src_copy"))["streams"]}
        assert (copied["video"]["width"], copied["video"]["height"]) == (320, 240)
        # Plays over HLS too, packaged by the engine like any stream.
        wait_until(lambda: engine.session("src_small") is not None, what="HLS of the rendition")

        wait_until(thumb.exists, what="the thumbnail")
        assert picture_size(thumb) == (64, 48)
        first = thumb.read_bytes()
        wait_until(lambda: thumb.read_bytes() != first, what="a newer thumbnail")
        wait_until(lambda: progress and progress[-1].cpu_seconds > 0, what="CPU time")
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive() and states[-1] == "stopped"
    assert not thumb.exists()  # a stale picture is not left behind
    last = progress[-1]
    assert last.frames_decoded > 0 and last.frames_encoded["small"] > 0 and last.images_written >= 2
    # 12.5 of 25 fps: about every other picture is encoded.
    assert abs(last.frames_encoded["small"] - last.frames_decoded / 2) <= 3


def test_a_source_that_is_not_live_is_unavailable(engine):
    transcoder = Transcoder(
        engine.url("nothing"), [Rendition("r", engine.url("nothing_r"), VideoEncoding())], open_timeout=3
    )
    with pytest.raises(SourceUnavailable):
        transcoder.run()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: VideoEncoding(codec="vp8"), "cannot be published over RTMP"),
        (lambda: AudioEncoding(codec="opus"), "cannot be published over RTMP"),
        (lambda: VideoEncoding(bitrate=0), "bitrate must be positive"),
        (lambda: Rendition("empty", "rtmp://127.0.0.1/app/x"), "neither video nor audio"),
        (lambda: Transcoder("rtmp://127.0.0.1/app/x", []), "at least one rendition or image"),
    ],
)
def test_what_cannot_be_made_is_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_video_sizes_keep_proportions_and_are_even():
    assert VideoEncoding(height=360).size_for(1280, 720) == (640, 360)
    assert VideoEncoding(width=427).size_for(1280, 720) == (426, 240)
    assert VideoEncoding(width=-1, height=-1).size_for(1280, 720) == (1280, 720)
    assert VideoEncoding(width=640, height=480).size_for(1280, 720) == (640, 480)


def test_the_thumbnail_store_serves_only_fresh_pictures_of_safe_names(tmp_path):
    store = ThumbnailStore(tmp_path, max_age=30)
    path = store.path("default", "app", "cam", "jpg")
    assert path == tmp_path / "default" / "app" / "cam" / "thumb.jpg"
    assert store.latest("default", "app", "cam", "jpg") is None
    store.write(path, b"picture")
    assert store.latest("default", "app", "cam", "jpg") == b"picture"
    old = time.time() - 60
    os.utime(path, (old, old))
    assert store.latest("default", "app", "cam", "jpg") is None  # its job is gone
    for bad in ("..", "a/b", ""):
        with pytest.raises(ValueError):
            store.path("default", "app", bad, "jpg")
    with pytest.raises(ValueError):
        store.path("default", "app", "cam", "gif")


def test_the_master_playlist_lists_each_variant_with_bandwidth_resolution_and_codecs():
    text = render_master_playlist(
        [
            VariantStream("../cam_720p/playlist.m3u8", 1264000, 1280, 720, ("avc1.42c01f", "mp4a.40.2")),
            VariantStream("../cam_audio/playlist.m3u8", 64000, codecs=("mp4a.40.2",)),
        ]
    ).decode()
    assert text.splitlines() == [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-STREAM-INF:BANDWIDTH=1264000,RESOLUTION=1280x720,CODECS="avc1.42c01f,mp4a.40.2"',
        "../cam_720p/playlist.m3u8",
        '#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.2"',
        "../cam_audio/playlist.m3u8",
    ]
