"""An app whose `stream_went_live` receiver raises cannot leave a Stream row live forever: the engine's
report of the start still succeeds, the other apps' receivers still run, and the end ends the row."""

import asyncio

import pytest

from apps.engine.control_plane import DatabaseControlPlane
from apps.engine.models import EngineNode
from apps.streams.choices import StreamState
from apps.streams.models import Stream
from apps.streams.signals import stream_went_live
from media_engine.registry import LiveStream, StreamKey

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def broken_and_working_receivers():
    called = []

    def broken(sender, stream, **kwargs):
        raise RuntimeError("this app is broken")

    def working(sender, stream, **kwargs):
        called.append(stream.name)

    stream_went_live.connect(broken, weak=False, dispatch_uid="test-broken")
    stream_went_live.connect(working, weak=False, dispatch_uid="test-working")
    yield called
    stream_went_live.disconnect(dispatch_uid="test-broken")
    stream_went_live.disconnect(dispatch_uid="test-working")


def test_a_raising_receiver_cannot_leave_the_stream_live(broken_and_working_receivers, caplog):
    node = EngineNode.objects.create(node_id="n", hostname="n", rtmp_port=1935, media_http_port=3333)
    control = DatabaseControlPlane(node)
    live = LiveStream(StreamKey("default", "app", "cam"), "rtmp", "127.0.0.1:5000")

    asyncio.run(control.stream_started(live))
    row = Stream.objects.get(name="cam")
    assert row.state != StreamState.ENDED
    assert broken_and_working_receivers == ["cam"]  # the other app still heard of it
    assert "this app is broken" in caplog.text  # and the failure is in the log

    asyncio.run(control.stream_ended(live))
    row.refresh_from_db()
    assert row.state == StreamState.ENDED
