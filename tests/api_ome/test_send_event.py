"""OME :sendEvent without media: the spec's body, validation (400), unknown streams (404), and the command
that reaches the stream's engine node (the ID3 tag it carries, byte for byte)."""

import asyncio

import pytest
from channels.layers import get_channel_layer

from apps.engine.models import EngineNode
from apps.hosting.models import Application
from apps.streams import services
from media_engine.hls.fmp4 import id3_priv_frame, id3_tag, id3_text_frame, id3_txxx_frame

pytestmark = pytest.mark.django_db
STREAM = "/v1/vhosts/default/apps/app/streams/stream"

# The request body of the spec.
SPEC_BODY = {
    "eventFormat": "id3v2",
    "eventType": "video",
    "events": [
        {"frameType": "TXXX", "info": "AirenSoft", "data": "OvenMediaEngine"},
        {"frameType": "TIT2", "data": "OvenMediaEngine 123"},
    ],
}


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def node():
    return EngineNode.objects.create(node_id="node-a", hostname="a", rtmp_port=1935, media_http_port=3333)


@pytest.fixture
def live(node):
    return services.stream_started(Application.objects.get(name="app"), "stream", node, "Rtmp", "127.0.0.1:5000")


class NodeInbox:
    """What the engine node would read from its Channels group."""

    def __init__(self, node: EngineNode) -> None:
        self.layer = get_channel_layer()
        self.channel = asyncio.run(self._join(node))

    async def _join(self, node):
        channel = await self.layer.new_channel()
        await self.layer.group_add(node.command_group, channel)
        return channel

    def receive(self) -> dict:
        return asyncio.run(asyncio.wait_for(self.layer.receive(self.channel), 2))


def test_it_sends_the_spec_example_to_the_streams_node(ome, node, live):
    inbox = NodeInbox(node)
    response = ome.post(f"{STREAM}:sendEvent", SPEC_BODY)
    assert response.status_code == 200
    assert response.json() == {"statusCode": 200, "message": "OK"}
    message = inbox.receive()
    assert message["type"] == "stream.timed_metadata"
    assert (message["vhost"], message["app"], message["stream"]) == ("default", "app", "stream")
    assert message["id3"] == id3_tag(
        [id3_txxx_frame("AirenSoft", "OvenMediaEngine"), id3_text_frame("TIT2", "OvenMediaEngine 123")]
    )


def test_it_takes_priv_frames_and_the_default_event_type(ome, node, live):
    inbox = NodeInbox(node)
    body = {"eventFormat": "id3v2", "events": [{"frameType": "PRIV", "info": "com.example", "data": "cue-42"}]}
    assert ome.post(f"{STREAM}:sendEvent", body).status_code == 200
    assert inbox.receive()["id3"] == id3_tag([id3_priv_frame("com.example", b"cue-42")])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([SPEC_BODY], "[HTTP] Request body must be an object (400)"),
        ({**SPEC_BODY, "eventFormat": None}, "[HTTP] eventFormat: This field may not be null. (400)"),
        ({"events": SPEC_BODY["events"]}, "[HTTP] eventFormat: This field is required. (400)"),
        ({**SPEC_BODY, "eventFormat": "scte35"}, '[HTTP] eventFormat: "scte35" is not a valid choice. (400)'),
        ({**SPEC_BODY, "eventType": "data"}, '[HTTP] eventType: "data" is not a valid choice. (400)'),
        ({"eventFormat": "id3v2"}, "[HTTP] events: This field is required. (400)"),
        ({**SPEC_BODY, "events": []}, "[HTTP] events: This list may not be empty. (400)"),
        ({**SPEC_BODY, "events": {"frameType": "TXXX"}}, None),
        (
            {**SPEC_BODY, "events": [{"frameType": "APIC", "data": "x"}]},
            "[HTTP] events[0].frameType: Only TXXX, T??? (text information frames such as TIT2) and PRIV are "
            "supported. (400)",
        ),
        (
            {**SPEC_BODY, "events": [{"frameType": "TXXX", "info": "no data"}]},
            "[HTTP] events[0].data: This field is required. (400)",
        ),  # fmt: skip
        ({**SPEC_BODY, "events": [{"frameType": "PRIV", "info": "ô☃", "data": "x"}]}, None),
    ],
)
def test_bad_bodies_are_400(ome, node, live, body, message):
    response = ome.post(f"{STREAM}:sendEvent", body)
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400
    if message:
        assert response.json()["message"] == message


def test_a_stream_that_is_not_live_is_404(ome, node):
    response = ome.post(f"{STREAM}:sendEvent", SPEC_BODY)
    assert response.status_code == 404
    assert response.json() == {
        "statusCode": 404,
        "message": "[HTTP] Could not find the stream: [default/#default#app/stream] (404)",
    }


def test_an_unknown_app_is_404(ome):
    response = ome.post("/v1/vhosts/default/apps/app1/streams/stream:sendEvent", SPEC_BODY)
    assert response.status_code == 404
    assert response.json()["message"] == "[HTTP] Could not find the application: [default/app1] (404)"


def test_it_needs_the_access_token(anonymous):
    response = anonymous.post(f"{STREAM}:sendEvent", SPEC_BODY, format="json")
    assert response.status_code == 401
