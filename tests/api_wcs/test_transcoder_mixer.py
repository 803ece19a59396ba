"""WCS /transcoder/*, /transcoder2/* and /mixer/* without media: what the calls store, their 400s
(bad encoder, missing pictures, unknown layouts), 404s and 409s, and that bad input changes
nothing. The media (sizes, watermark pixels, the mix, mute) is in tests/integration/test_wcs_mixer.py."""

from __future__ import annotations

import subprocess

import pytest

from apps.hosting.models import Application
from apps.mixing.models import Mixer
from apps.streams.models import Stream
from apps.transcoding.models import WcsTranscoder

pytestmark = pytest.mark.django_db
API = "/rest-api"


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=white:size=16x16", "-frames:v", "1",
         str(tmp_path / "mark.png")],
        check=True, timeout=30,
    )  # fmt: skip
    (tmp_path / "not-a-picture.png").write_text("hello")
    return tmp_path


def live(name: str) -> Stream:
    return Stream.objects.create(
        application=Application.objects.get(name="app"), name=name, source_type="Rtmp", remote_address="127.0.0.1:1"
    )


STARTUP = {"uri": "transcoder://t1", "remoteStreamName": "cam", "localStreamName": "cam_small", "encoder": {}}


def test_transcoder_startup_stores_the_transcoder(wcs):
    live("cam")
    body = {**STARTUP, "encoder": {"width": 320, "height": 180, "fps": 15, "keyFrameInterval": 30, "bitrate": 400}}
    response = wcs.post(f"{API}/transcoder/startup", body)
    assert response.status_code == 200, response.content
    job = WcsTranscoder.objects.get()
    assert (job.uri, job.stream_name, job.local_stream_name, job.api_version) == (
        "transcoder://t1",
        "cam",
        "cam_small",
        1,
    )
    found = wcs.post(f"{API}/transcoder/find", {"remoteStreamName": "cam"}).json()
    assert [(t["uri"], t["status"], t["encoder"]["width"]) for t in found] == [("transcoder://t1", "PENDING", 320)]
    assert wcs.post(f"{API}/transcoder2/find_all").status_code == 404  # the other API version's list


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({**STARTUP, "remoteStreamName": "nope"}, 404, "Stream not found: nope"),
        ({**STARTUP, "uri": "mixer://t1"}, 400, "Bad request: uri must be transcoder://<name>"),
        ({**STARTUP, "encoder": {"type": "VP8"}}, 400, "Bad request: encoder type VP8 is not supported (use H264)"),
        ({**STARTUP, "encoder": {"width": "wide"}}, 400, "Bad request: encoder width must be a number"),
        (
            {**STARTUP, "encoder": {"watermark": "missing.png"}},
            400,
            "Bad request: watermark: missing.png: no such file",
        ),
        ({**STARTUP, "localStreamName": "cam"}, 400, "Bad request: localStreamName must differ from remoteStreamName"),
    ],
)
def test_transcoder_startup_refuses_bad_input_and_stores_nothing(wcs, media_root, body, status, message):
    live("cam")
    response = wcs.post(f"{API}/transcoder/startup", body)
    assert (response.status_code, response.json()["message"]) == (status, message)
    assert not WcsTranscoder.objects.exists()


def test_transcoder_conflicts_and_terminate(wcs):
    live("cam")
    live("busy")
    assert wcs.post(f"{API}/transcoder2/startup", {**STARTUP, "uri": "transcoder2://t1"}).status_code == 200
    again = wcs.post(f"{API}/transcoder2/startup", {**STARTUP, "uri": "transcoder2://t1", "localStreamName": "x"})
    assert again.status_code == 409
    taken = wcs.post(f"{API}/transcoder2/startup", {**STARTUP, "uri": "transcoder2://t2", "localStreamName": "busy"})
    assert (taken.status_code, taken.json()["message"]) == (409, "Conflict: a stream named busy exists")
    assert wcs.post(f"{API}/transcoder2/terminate", {}).status_code == 404
    assert wcs.post(f"{API}/transcoder2/terminate", {"uri": "transcoder2://t1"}).status_code == 200
    assert WcsTranscoder.objects.get().state == "stopped"  # it never ran: stopped at once
    assert wcs.post(f"{API}/transcoder2/find_all").status_code == 404


def test_set_watermark_checks_the_picture(wcs, media_root):
    live("cam")
    wcs.post(f"{API}/transcoder/startup", STARTUP)
    mark = {"uri": "transcoder://t1", "watermark": "mark.png", "x": 4, "marginTop": 8}
    assert wcs.post(f"{API}/transcoder/set_watermark", mark).status_code == 200
    assert WcsTranscoder.objects.get().watermark == {"watermark": "mark.png", "x": 4, "marginTop": 8}
    for bad in ("not-a-picture.png", "../etc/passwd", "missing.png"):
        response = wcs.post(f"{API}/transcoder/set_watermark", {**mark, "watermark": bad})
        assert response.status_code == 400, bad
    assert WcsTranscoder.objects.get().watermark["watermark"] == "mark.png"
    assert wcs.post(f"{API}/transcoder/set_watermark", {**mark, "uri": "transcoder://x"}).status_code == 404


def test_mixer_startup_add_remove_and_find(wcs, media_root):
    live("s1")
    live("s2")
    body = {"uri": "mixer://m1", "localStreamName": "m1", "background": "mark.png", "mixerLayoutClass":
            "com.flashphoner.mixerlayout.HorizontalLayout", "mixerVideoWidth": 640, "mixerVideoHeight": 360}  # fmt: skip
    assert wcs.post(f"{API}/mixer/startup", body).status_code == 200
    mixer = Mixer.objects.get()
    assert (mixer.stream_name, mixer.layout, mixer.background, mixer.parameter("mixerVideoWidth")) == (
        "m1", "horizontal", "mark.png", 640
    )  # fmt: skip
    assert wcs.post(f"{API}/mixer/startup", body).status_code == 409
    for name in ("s1", "s2"):
        assert wcs.post(f"{API}/mixer/add", {"uri": "mixer://m1", "remoteStreamName": name}).status_code == 200
    assert wcs.post(f"{API}/mixer/add", {"uri": "mixer://m1", "remoteStreamName": "s1"}).status_code == 409
    assert wcs.post(f"{API}/mixer/add", {"uri": "mixer://m1", "remoteStreamName": "nope"}).status_code == 404
    assert wcs.post(f"{API}/mixer/add", {"uri": "mixer://zz", "remoteStreamName": "s1"}).status_code == 404
    [found] = wcs.post(f"{API}/mixer/find_all").json()
    assert (found["uri"], found["localStreamName"], len(found["mediaSessions"])) == ("mixer://m1", "m1", 2)
    assert wcs.post(f"{API}/mixer/remove", {"uri": "mixer://m1", "remoteStreamName": "s1"}).status_code == 200
    assert wcs.post(f"{API}/mixer/remove", {"uri": "mixer://m1", "remoteStreamName": "s1"}).status_code == 404
    assert list(mixer.inputs.values_list("stream_name", flat=True)) == ["s2"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"uri": "m1"}, "Bad request: uri must be mixer://<name>"),
        ({"uri": "mixer://m1", "mixerLayoutClass": "Spiral"}, "Bad request: mixerLayoutClass 'Spiral' is not one of "
         "GridLayout, HorizontalLayout, VerticalLayout"),
        ({"uri": "mixer://m1", "background": "nope.png"}, "Bad request: background: nope.png: no such file"),
        ({"uri": "mixer://m1", "mixerVideoWidth": 641}, "Bad request: mixerVideoWidth must be even"),
        ({"uri": "mixer://m1", "hasVideo": False, "hasAudio": False},
         "Bad request: hasVideo and hasAudio cannot both be false"),
    ],
)  # fmt: skip
def test_mixer_startup_refuses_bad_input(wcs, media_root, body, message):
    response = wcs.post(f"{API}/mixer/startup", body)
    assert (response.status_code, response.json()["message"]) == (400, message)
    assert not Mixer.objects.exists()


def test_mixer_controls(wcs, media_root):
    s1 = live("s1")
    live("s2")
    wcs.post(f"{API}/mixer/startup", {"uri": "mixer://m1"})
    for name in ("s1", "s2"):
        wcs.post(f"{API}/mixer/add", {"uri": "mixer://m1", "remoteStreamName": name})
    mixer = Mixer.objects.get()
    assert mixer.stream_name == "m1"  # the URI's name when localStreamName is not given

    regex = {"uri": "mixer://m1", "streams": "^s", "audioLevel": 0, "videoMuted": True}
    assert wcs.post(f"{API}/mixer/setAudioVideo", regex).status_code == 200
    assert set(mixer.inputs.values_list("audio_level", "video_muted")) == {(0, True)}
    one = {"uri": "mixer://m1", "streams": ["s2"], "audioLevel": 50}
    assert wcs.post(f"{API}/mixer/setAudioVideo", one).status_code == 200
    assert dict(mixer.inputs.values_list("stream_name", "audio_level")) == {"s1": 0, "s2": 50}
    none = {"uri": "mixer://m1", "streams": ["zz"], "audioLevel": 50}
    assert wcs.post(f"{API}/mixer/setAudioVideo", none).status_code == 404
    assert wcs.post(f"{API}/mixer/setAudioVideo", {**one, "audioLevel": 101}).status_code == 400

    body_mark = {"uri": "mixer://m1", "watermark": "mark.png", "marginRight": 10, "marginBottom": 10}
    assert wcs.post(f"{API}/mixer/set_body_watermark", body_mark).status_code == 200
    mixer.refresh_from_db()
    assert mixer.watermark == {"watermark": "mark.png", "marginRight": 10, "marginBottom": 10}
    stream_mark = {"uri": "mixer://m1", "watermark": "mark.png", "mediaSessionId": str(s1.media_session_id)}
    assert wcs.post(f"{API}/mixer/set_stream_watermark", stream_mark).status_code == 200
    assert mixer.inputs.get(stream_name="s1").watermark == {"watermark": "mark.png"}
    unknown = {**stream_mark, "mediaSessionId": "00000000-0000-0000-0000-000000000000"}
    assert wcs.post(f"{API}/mixer/set_stream_watermark", unknown).status_code == 404

    assert wcs.post(f"{API}/mixer/set_parameter", {"uri": "mixer://m1", "mixerLayoutClass": "VerticalLayout",
                                                   "mixerVideoFps": 15}).status_code == 200  # fmt: skip
    mixer.refresh_from_db()
    assert (mixer.layout, mixer.parameter("mixerVideoFps")) == ("vertical", 15)
    assert wcs.post(f"{API}/mixer/set_parameter", {"uri": "mixer://m1", "colour": "red"}).status_code == 400
    assert wcs.post(f"{API}/mixer/terminate", {"uri": "mixer://m1"}).status_code == 200
    assert wcs.post(f"{API}/mixer/terminate", {"uri": "mixer://m1"}).status_code == 404


def test_mixer_load_test(wcs):
    for name in ("a", "b", "c"):
        live(name)
    example = wcs.post(f"{API}/mixer/test/get_start_example").json()
    assert set(example) == {"feedingStreams", "mixerCount", "streamsInMixer", "intervalInSeconds"}
    body = {"feedingStreams": 3, "mixerCount": 2, "streamsInMixer": 2, "intervalInSeconds": 0}
    assert wcs.post(f"{API}/mixer/test/start", body).status_code == 200
    mixers = {m.uri: sorted(m.inputs.values_list("stream_name", flat=True)) for m in Mixer.objects.all()}
    assert mixers == {"mixer://test_mixer_1": ["a", "b"], "mixer://test_mixer_2": ["b", "c"]}
    assert wcs.post(f"{API}/mixer/test/start", body).status_code == 409
    assert wcs.post(f"{API}/mixer/test/stop").status_code == 200
    assert wcs.post(f"{API}/mixer/test/stop").status_code == 404
