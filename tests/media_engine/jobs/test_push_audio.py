"""A push with audio control (WCS transponders): the pushed audio, as nginx-rtmp serves it and
ffmpeg's volumedetect measures it, follows mute and injected sound while the push goes on."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_engine.jobs.audio_control import AudioControl, SoundClip, check_sound_file
from tests.tools.audio import levels, make_wav

from .conftest import EXPECTED_CODECS, EngineThread, codecs, ffprobe, publish_command
from .test_push import pushing


@pytest.fixture(scope="module")
def quiet_source(engine: EngineThread) -> Iterator[str]:
    """A stream whose audio is a quiet tone (lavfi sine at 1/8 amplitude: about -21 dB mean)."""
    process = subprocess.Popen(publish_command(engine.url("quiet"), None), stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not engine.is_live("quiet"):
        assert process.poll() is None and time.monotonic() < deadline, "the stream did not go live"
        time.sleep(0.05)
    yield engine.url("quiet")
    process.terminate()
    process.wait(10)


def test_sound_clip_is_resampled_and_loops(tmp_path: Path):
    wav = make_wav(tmp_path / "tone.wav", 1000, 0.5)
    clip = SoundClip(str(wav), 48000, "stereo", loop=False)
    assert clip.samples.shape[0] == 2
    assert abs(clip.samples.shape[1] - 24000) < 1200  # 0.5 s at 48 kHz
    first = clip.take(30000)
    assert first.shape == (2, 30000)
    assert abs(first[:, :20000]).max() > 0.5 and abs(first[:, 25000:]).max() == 0.0
    assert clip.finished
    looping = SoundClip(str(wav), 48000, "stereo", loop=True)
    looping.take(24000)
    assert abs(looping.take(1000)).max() > 0.5 and not looping.finished


def test_check_sound_file_refuses_what_is_not_audio(tmp_path: Path):
    check_sound_file(str(make_wav(tmp_path / "ok.wav", 440, 0.2)))
    (tmp_path / "text.wav").write_text("RIFF but not really")
    with pytest.raises(ValueError, match="not readable audio"):
        check_sound_file(str(tmp_path / "text.wav"))
    with pytest.raises(ValueError, match="not readable audio"):
        check_sound_file(str(tmp_path / "missing.wav"))


def test_mute_and_sound_change_the_pushed_audio_without_reconnecting(quiet_source: str, nginx, tmp_path: Path):
    server = nginx()
    wav = make_wav(tmp_path / "loud.wav", 1000, 1.0)
    control = {"now": AudioControl()}
    run = pushing(quiet_source, "rtmp", server.url(), stream_key="audio", audio_control=lambda: control["now"])
    target = server.url("audio")
    try:
        run.wait_for("started")
        assert codecs(ffprobe(target)) == EXPECTED_CODECS
        mean, peak = levels(target)
        assert -30 < mean < -15, f"the tone should pass unchanged: mean {mean} dB"

        control["now"] = AudioControl(muted=True)
        time.sleep(1.5)
        mean, peak = levels(target)
        assert peak < -70, f"muted audio should be silent: max {peak} dB"

        control["now"] = AudioControl(muted=True, sound_file=str(wav), sound_loop=True, sound_serial=1)
        time.sleep(1.5)
        mean, peak = levels(target)
        assert peak > -3 and mean > -10, f"the injected tone should be heard: mean {mean}, max {peak} dB"

        control["now"] = AudioControl()
        time.sleep(1.5)
        mean, peak = levels(target)
        assert -30 < mean < -15, f"unmuted without sound: the source's tone again, mean {mean} dB"
    finally:
        run.finish()
    assert run.error is None
    assert run.states == [("started", None), ("stopped", None)], "the push must not reconnect"
