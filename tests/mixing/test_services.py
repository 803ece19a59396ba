"""What a running mixer is told (mixer_settings): its inputs in order with their RTMP URL while
live (None otherwise), levels as gains, the layout and sizes from the row and its parameters."""

from __future__ import annotations

import pytest

from apps.engine.models import EngineNode
from apps.hosting.models import Application
from apps.mixing.models import Mixer
from apps.mixing.services import PictureCache, add_stream, create_mixer, mixer_settings, set_audio_video
from apps.streams.models import Stream

pytestmark = pytest.mark.django_db


def test_the_settings_follow_the_rows():
    application = Application.objects.get(name="app")
    node = EngineNode.objects.create(
        node_id="n1", hostname="h", address="127.0.0.1", rtmp_port=1935, media_http_port=3333
    )
    for name in ("a", "b"):
        Stream.objects.create(application=application, name=name, source_type="Rtmp", node=node)
    mixer = create_mixer(application, "mixer://m", "m", layout_class="VerticalLayout",
                         parameters={"mixerVideoWidth": 320, "mixerVideoHeight": 180, "mixerVideoFps": 15})  # fmt: skip
    add_stream(mixer, "a")
    add_stream(mixer, "b")
    set_audio_video(mixer, ["b"], 25, True)
    Stream.objects.filter(name="a").update(state="ended")

    settings = mixer_settings(Mixer.objects.get(pk=mixer.pk), PictureCache())
    assert (settings.width, settings.height, settings.fps, settings.layout) == (320, 180, 15.0, "vertical")
    assert [(i.name, i.url, i.audio_level, i.video_muted) for i in settings.inputs] == [
        ("a", None, 1.0, False),
        ("b", node.rtmp_url("app", "b"), 0.25, True),
    ]
    assert settings.inputs[1].url.startswith("rtmp://127.0.0.1:1935/app/b")
