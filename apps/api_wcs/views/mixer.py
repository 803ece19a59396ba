"""WCS /mixer/*: mixers that compose live streams into one output stream (apps.mixing): startup,
add/remove streams, find, terminate, audio level and video mute per stream, watermarks,
parameters; and /mixer/test/* (the load test: mixers made of the live streams)."""

from __future__ import annotations

from rest_framework import serializers

from apps.api_wcs.errors import WcsError
from apps.api_wcs.presenters import AGENT_STATUS
from apps.api_wcs.views.base import Method, found, wcs_application
from apps.api_wcs.views.transcoder import Watermark
from apps.jobs.choices import JobState
from apps.mixing import services
from apps.mixing.models import Mixer
from apps.streams.models import Stream
from apps.transcoding.transcoders import watermark_spec

TEST_URI_PREFIX = "mixer://test_mixer_"


class MixerStartup(serializers.Serializer):
    uri = serializers.CharField(max_length=255, help_text="mixer://name")
    localStreamName = serializers.CharField(max_length=255, required=False)
    hasVideo = serializers.BooleanField(required=False, default=True)
    hasAudio = serializers.BooleanField(required=False, default=True)
    background = serializers.CharField(required=False, allow_blank=True, default="")
    watermark = serializers.CharField(required=False, allow_blank=True, default="")
    mixerLayoutClass = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="GridLayout (default), HorizontalLayout, VerticalLayout"
    )


class MixerUri(serializers.Serializer):
    uri = serializers.CharField(max_length=255)


class MixerStream(MixerUri):
    remoteStreamName = serializers.CharField(max_length=255)


class AudioVideo(MixerUri):
    streams = serializers.JSONField(help_text='["stream1", "stream2"] or a regular expression such as "^stream.*"')
    audioLevel = serializers.IntegerField(required=False, min_value=0, max_value=100, help_text="0 (silent) to 100 %")
    videoMuted = serializers.BooleanField(required=False)

    def validate_streams(self, value):
        if isinstance(value, list) and all(isinstance(name, str) for name in value):
            return value
        if isinstance(value, str) and value:
            return value
        raise serializers.ValidationError("a list of stream names or a regular expression")


class StreamWatermark(Watermark):
    mediaSessionId = serializers.CharField(max_length=100)


class MixerTest(serializers.Serializer):
    feedingStreams = serializers.IntegerField(min_value=1, max_value=64)
    mixerCount = serializers.IntegerField(min_value=1, max_value=16)
    streamsInMixer = serializers.IntegerField(min_value=1, max_value=16)
    intervalInSeconds = serializers.IntegerField(min_value=0, max_value=3600, required=False, default=0)


class MixerObject(serializers.Serializer):
    localMediaSessionId = serializers.CharField()
    localStreamName = serializers.CharField()
    uri = serializers.CharField()
    status = serializers.CharField()
    hasAudio = serializers.BooleanField()
    hasVideo = serializers.BooleanField()
    record = serializers.BooleanField()
    mediaSessions = serializers.ListField(child=serializers.CharField())


def mixer_to_wcs(mixer: Mixer) -> dict:
    names = list(mixer.inputs.values_list("stream_name", flat=True))
    sessions = (
        Stream.objects.live()
        .filter(application_id=mixer.application_id, name__in=names)
        .values_list("media_session_id", flat=True)
    )
    return {
        "localMediaSessionId": str(mixer.media_session_id),
        "remoteMediaSessionId": None,
        "localStreamName": mixer.stream_name,
        "remoteStreamName": None,
        "uri": mixer.uri,
        "status": AGENT_STATUS[mixer.state],
        "hasAudio": mixer.has_audio,
        "hasVideo": mixer.has_video,
        "record": False,
        "mediaSessions": [str(session) for session in sessions],
        "streams": names,
        "mixerLayoutClass": mixer.layout,
        "background": mixer.background,
        **{name: mixer.parameter(name) for name in ("mixerVideoWidth", "mixerVideoHeight", "mixerVideoFps")},
    }


def calling(function, *args):
    """A mixing service, its errors in WCS's words."""
    try:
        return function(*args)
    except services.NotFound as error:
        raise WcsError(404, str(error)) from error
    except services.Conflict as error:
        raise WcsError(409, f"Conflict: {error}") from error
    except ValueError as error:
        raise WcsError(400, f"Bad request: {error}") from error


def wcs_mixers():
    """The mixers WCS shows: a terminated mixer is gone at once for WCS (404, out of find_all), even
    while its worker is still tearing it down (``stopping``)."""
    return services.active_mixers(wcs_application()).exclude(state=JobState.STOPPING)


def the_mixer(uri: str) -> Mixer:
    mixer = wcs_mixers().filter(uri=uri).first()
    if mixer is None:
        raise WcsError(404, f"Mixer not found: {uri}")
    return mixer


def startup(data: dict) -> None:
    name = data.get("localStreamName") or data["uri"].split("://", 1)[-1]
    extra = {key: value for key, value in data.items() if key.startswith("mixerVideo") or key.startswith("mixerAudio")}
    calling(
        lambda: services.create_mixer(
            wcs_application(),
            data["uri"],
            name,
            has_video=data["hasVideo"],
            has_audio=data["hasAudio"],
            background=data["background"],
            watermark=data["watermark"],
            layout_class=data["mixerLayoutClass"],
            parameters=extra,
        )
    )


class MixerStartupWithParameters(MixerStartup):
    """WCS also takes mixer parameters (mixerVideoWidth...) in the startup body."""

    mixerVideoWidth = serializers.IntegerField(required=False)
    mixerVideoHeight = serializers.IntegerField(required=False)
    mixerVideoFps = serializers.IntegerField(required=False)
    mixerVideoBitrateKbps = serializers.IntegerField(required=False)
    mixerAudioBitrateKbps = serializers.IntegerField(required=False)
    mixerVideoPreset = serializers.CharField(required=False)


def add(data: dict) -> None:
    calling(services.add_stream, the_mixer(data["uri"]), data["remoteStreamName"])


def remove(data: dict) -> None:
    calling(services.remove_stream, the_mixer(data["uri"]), data["remoteStreamName"])


def find_all(data: dict) -> list[dict]:
    mixers = wcs_mixers().order_by("created_at")
    return found([mixer_to_wcs(mixer) for mixer in mixers], "Not found")


def terminate(data: dict) -> None:
    services.stop_mixer(the_mixer(data["uri"]))


def set_audio_video(data: dict) -> None:
    mixer = the_mixer(data["uri"])
    calling(services.set_audio_video, mixer, data["streams"], data.get("audioLevel"), data.get("videoMuted"))


def set_body_watermark(data: dict) -> None:
    mixer = the_mixer(data["uri"])
    services.set_body_watermark(mixer, calling(watermark_spec, data))


def set_stream_watermark(data: dict) -> None:
    mixer = the_mixer(data["uri"])
    spec = calling(watermark_spec, data)
    calling(services.set_stream_watermark, mixer, data["mediaSessionId"], spec)


class Parameter(MixerUri):
    """Any of: mixerLayoutClass, background, mixerVideoWidth/Height/Fps/BitrateKbps,
    mixerAudioBitrateKbps, mixerVideoPreset (sizes and rates apply at the mixer's next start)."""

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        values["parameters"] = {key: value for key, value in data.items() if key != "uri"}
        return values


def set_parameter(data: dict) -> None:
    calling(services.set_parameters, the_mixer(data["uri"]), data["parameters"])


# -- the load test --------------------------------------------------------------------------------


def test_example(data: dict) -> dict:
    return {"feedingStreams": 2, "mixerCount": 1, "streamsInMixer": 2, "intervalInSeconds": 0}


def test_start(data: dict) -> None:
    """``mixerCount`` mixers ``mixer://test_mixer_<n>`` (output ``test_mixer_<n>``), each mixing
    ``streamsInMixer`` of the first ``feedingStreams`` live streams, in turn."""
    application = wcs_application()
    if services.active_mixers(application).filter(uri__startswith=TEST_URI_PREFIX).exists():
        raise WcsError(409, "Conflict: a mixer test runs; stop it first")
    feeding = list(
        Stream.objects.live()
        .filter(application=application)
        .exclude(name__startswith="test_mixer_")
        .order_by("created_at")
        .values_list("name", flat=True)[: data["feedingStreams"]]
    )
    if not feeding:
        raise WcsError(404, "Not found: no live stream to feed the mixers")
    for number in range(1, data["mixerCount"] + 1):
        mixer = calling(services.create_mixer, application, f"{TEST_URI_PREFIX}{number}", f"test_mixer_{number}")
        for index in range(data["streamsInMixer"]):
            calling(services.add_stream, mixer, feeding[(number - 1 + index) % len(feeding)])


def test_stop(data: dict) -> None:
    mixers = list(wcs_mixers().filter(uri__startswith=TEST_URI_PREFIX))
    if not mixers:
        raise WcsError(404, "Not found: no mixer test runs")
    for mixer in mixers:
        services.stop_mixer(mixer)


NOT_FOUND = ((404, "Not found"),)
METHODS = [
    Method("mixer", "startup", startup, MixerStartupWithParameters, None, "Create a mixer publishing localStreamName",
           ((400, "Bad request"), (409, "Conflict"), (500, "Internal error"))),
    Method("mixer", "add", add, MixerStream, None, "Add a live stream to the mixer",
           ((404, "Mixer not found/Stream not found"), (409, "Conflict"))),
    Method("mixer", "remove", remove, MixerStream, None, "Remove a stream from the mixer",
           ((404, "Mixer not found/Stream not found"),)),
    Method("mixer", "find_all", find_all, response=MixerObject(many=True), summary="Find all mixers",
           errors=NOT_FOUND),
    Method("mixer", "terminate", terminate, MixerUri, None, "Terminate the mixer", NOT_FOUND),
    Method("mixer", "setAudioVideo", set_audio_video, AudioVideo, None,
           "Audio level (0-100 %) and video mute of mixed streams", ((400, "Bad request"), (404, "Not found"))),
    Method("mixer", "set_body_watermark", set_body_watermark, Watermark, None,
           "Watermark over the mixer's output picture", ((400, "Bad request"), (404, "Not found"))),
    Method("mixer", "set_stream_watermark", set_stream_watermark, StreamWatermark, None,
           "Watermark over one mixed stream's picture", ((400, "Bad request"), (404, "Not found"))),
    Method("mixer", "set_parameter", set_parameter, Parameter, None, "Change mixer parameters",
           ((400, "Bad request"), (404, "Not found"))),
    Method("mixer/test", "start", test_start, MixerTest, None, "Start the mixer load test",
           ((404, "Not found"), (409, "Conflict"))),
    Method("mixer/test", "stop", test_stop, summary="Stop the mixer load test", errors=NOT_FOUND),
    Method("mixer/test", "get_start_example", test_example, response=MixerTest,
           summary="A sample body for /mixer/test/start"),
]  # fmt: skip
