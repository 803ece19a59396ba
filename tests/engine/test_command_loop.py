"""The engine node's command loop survives bad messages: garbage and a command whose handler raises
are logged and skipped, and the stop sent after them still disconnects ffmpeg's publish.

A real engine node (RTMP server) in this process, fed by the API's own sending code over a Channels layer.
"""

from __future__ import annotations

import asyncio
import logging
import shutil

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from apps.engine import commands
from apps.engine.models import EngineNode
from apps.engine.runner import EngineRunner
from apps.webrtc_relay.engine import RelayCommands
from media_engine.commands import SetHls, StopStream
from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.node import EngineNode as MediaEngineNode
from media_engine.node import NodeAddresses
from media_engine.registry import StreamKey

assert shutil.which("ffmpeg"), "ffmpeg is missing: run `make test`"
KEY = StreamKey("default", "app", "cam")
STREAM = {"vhost": "default", "app": "app", "stream": "cam"}


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def publish(port: int) -> list[str]:
    return [
        "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-t", "60", "-f", "flv",
        f"rtmp://127.0.0.1:{port}/app/cam",
    ]  # fmt: skip


async def wait_until(condition, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def test_garbage_and_a_failing_handler_do_not_stop_the_next_stop(caplog):
    node_row = EngineNode(node_id="loop-test", hostname="here", rtmp_port=0, media_http_port=0)
    runner = EngineRunner("loop-test", NodeAddresses(rtmp_host="127.0.0.1", rtmp_port=0, http_port=0), 1.0)
    send = sync_to_async(commands.send)

    async def scenario() -> None:
        engine = MediaEngineNode(
            StaticControlPlane([ApplicationConfig("default", "app")]),
            NodeAddresses(rtmp_host="127.0.0.1", rtmp_port=0, http_host="127.0.0.1", http_port=0),
        )
        runner.engine, runner.relays = engine, RelayCommands(engine.webrtc)
        await engine.start()
        publisher = await asyncio.create_subprocess_exec(*publish(engine.rtmp.port))
        loop_task = asyncio.create_task(runner._commands(node_row))
        try:
            await wait_until(lambda: engine.registry.get(KEY) is not None)

            def broken_set_hls(key, enabled):
                raise RuntimeError("the HLS packager broke")

            engine.set_hls = broken_set_hls
            layer = get_channel_layer()
            await asyncio.sleep(0.2)  # the loop joins its group
            for garbage in (
                {"type": "stream.stop"},
                {"type": "stream.hls", **STREAM, "enabled": "yes"},
                {"type": "no.such.command", **STREAM},
                {"type": "stream.timed_metadata", **STREAM, "id3": 42},
            ):
                await layer.group_send(node_row.command_group, garbage)
            await send(node_row, SetHls(**STREAM, enabled=False))  # well-formed; its handler raises
            await send(node_row, StopStream(**STREAM))

            await wait_until(lambda: engine.registry.get(KEY) is None)
            assert await asyncio.wait_for(publisher.wait(), 10) is not None  # ffmpeg was disconnected
            assert not loop_task.done()  # and the loop still reads commands
        finally:
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)
            if publisher.returncode is None:
                publisher.kill()
                await publisher.wait()
            await engine.stop()

    with caplog.at_level(logging.INFO, logger="apps.engine.runner"):
        asyncio.run(asyncio.wait_for(scenario(), 60))
    messages = [record.getMessage() for record in caplog.records]
    refused = [message for message in messages if message.startswith("engine command refused")]
    assert len(refused) == 4, messages
    assert any("stream.stop: vhost is missing" in message for message in refused)
    assert any(message.startswith("engine command SetHls(") and "failed" in message for message in messages)
    assert any(message.startswith("API asked to stop") and "disconnected" in message for message in messages)


def test_a_broken_layer_is_read_again_after_a_pause(monkeypatch, caplog):
    """A channel layer that fails (Redis gone) is retried, not the end of the node's commands."""
    node_row = EngineNode(node_id="flaky", hostname="here", rtmp_port=0, media_http_port=0)
    runner = EngineRunner("flaky", NodeAddresses(), 1.0)
    handled = []
    runner.handle_command = handled.append
    monkeypatch.setattr("apps.engine.runner.COMMAND_RETRY_FIRST", 0.05)

    async def scenario() -> None:
        layer = get_channel_layer()
        receive, failures = layer.receive, []

        async def failing_twice(channel):
            if len(failures) < 2:
                failures.append(channel)
                raise ConnectionError("Redis went away")
            return await receive(channel)

        layer.receive = failing_twice
        loop_task = asyncio.create_task(runner._commands(node_row))
        try:
            await wait_until(lambda: len(failures) == 2, 5)
            await asyncio.sleep(0.3)  # the third try joins the group again
            await sync_to_async(commands.send)(node_row, StopStream(**STREAM))
            await wait_until(lambda: handled, 5)
        finally:
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)

    with caplog.at_level(logging.ERROR, logger="apps.engine.runner"):
        asyncio.run(asyncio.wait_for(scenario(), 30))
    assert handled == [{"type": "stream.stop", **STREAM}]
    assert sum("engine command channel failed" in record.getMessage() for record in caplog.records) == 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_node_whose_loop_dies_ends_instead_of_looking_alive():
    """A node whose heartbeats (or commands) stopped must not go on serving as if nothing happened:
    it ends, with the reason, and `make run` starts it again."""
    addresses = NodeAddresses(rtmp_host="127.0.0.1", rtmp_port=0, http_host="127.0.0.1", http_port=0)
    runner = EngineRunner("dies", addresses, 0.1)

    async def broken_heartbeats(node):
        raise RuntimeError("a bug in the counters")

    runner._heartbeats = broken_heartbeats
    with pytest.raises(RuntimeError, match="the engine node's heartbeats loop ended") as ended:
        asyncio.run(asyncio.wait_for(runner.run(), 30))
    assert str(ended.value.__cause__) == "a bug in the counters"
    assert EngineNode.objects.filter(node_id="dies").exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_relay_command_reaches_the_relay_and_its_status_comes_back():
    """The API's relay start, read back by the node, runs the relay and reports its status to its row
    (here: the local stream it should push is not live on this node)."""
    from apps.hosting.models import Application
    from apps.webrtc_relay.models import WebRtcRelay

    node_row = EngineNode.objects.create(node_id="relays", hostname="here", rtmp_port=0, media_http_port=0)
    relay = WebRtcRelay.objects.create(
        direction="push", application=Application.objects.get(name="app"), node=node_row,
        uri="http://127.0.0.1:9/app/remote?direction=whip", local_stream_name="cam",
    )  # fmt: skip
    runner = EngineRunner("relays", NodeAddresses(), 1.0)

    async def scenario() -> None:
        engine = MediaEngineNode(StaticControlPlane([ApplicationConfig("default", "app")]), NodeAddresses())
        runner.engine, runner.relays = engine, RelayCommands(engine.webrtc)
        loop_task = asyncio.create_task(runner._commands(node_row))
        try:
            await asyncio.sleep(0.2)  # the loop joins its group
            await sync_to_async(commands.send_relay_start)(
                node_row, relay.relay_id, relay.direction, relay.signalling_url, "default", "app", "cam"
            )
            status = sync_to_async(lambda: WebRtcRelay.objects.get(pk=relay.pk).status)
            async with asyncio.timeout(10):
                while await status() != "FAILED":
                    await asyncio.sleep(0.05)
        finally:
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)

    asyncio.run(asyncio.wait_for(scenario(), 30))
    relay.refresh_from_db()
    assert (relay.status, relay.error) == ("FAILED", "the local stream is not live on this node")
