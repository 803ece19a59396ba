"""The real engine node process keeps taking API commands after malformed ones: garbage put on its
command group over Redis is refused (and logged), and the API's DELETE sent after it still
disconnects ffmpeg's publish."""

from __future__ import annotations

import asyncio

import pytest
from channels_redis.core import RedisChannelLayer

from apps.engine.models import engine_command_group
from tests.integration.conftest import wait_for
from tests.integration.test_engine import live_names, publish, wait_live

pytestmark = pytest.mark.services
STREAM = {"vhost": "default", "app": "app", "stream": "commands"}
GARBAGE = [
    {"type": "stream.stop"},  # no stream named: ended the node's command loop before
    {"type": "stream.hls", **STREAM, "enabled": "yes"},
    {"type": "stream.timed_metadata", **STREAM, "id3": "not bytes"},
    {"type": "webrtc.relay.start", **STREAM, "relay_id": "r1", "direction": "sideways", "url": "http://x/"},
    {"type": "no.such.command"},
]


def send_raw(platform, messages: list[dict]) -> None:
    """Put messages on the node's command group as any Channels client of the same Redis could."""
    layer = RedisChannelLayer(hosts=[platform.env["REDIS_URL"]], prefix=platform.env["STREAMHUB_CHANNELS_PREFIX"])
    group = engine_command_group(platform.env["STREAMHUB_NODE_ID"])

    async def send_all() -> None:
        for message in messages:
            await layer.group_send(group, message)
        await layer.close_pools()

    asyncio.run(send_all())


def test_garbage_commands_are_refused_and_a_stop_still_disconnects(live_platform):
    publisher = publish(live_platform, "commands", seconds=60)
    try:
        wait_live(live_platform, "commands", publisher)
        send_raw(live_platform, GARBAGE)
        wait_for(lambda: live_platform.log("engine").count("engine command refused") >= len(GARBAGE), 10)

        response = live_platform.api("DELETE", "/v1/vhosts/default/apps/app/streams/commands")
        assert response.status_code == 200
        assert publisher.wait(timeout=15) != 0  # the engine hung up on ffmpeg
        wait_for(lambda: "commands" not in live_names(live_platform), 10)
    finally:
        publisher.kill()
    log = live_platform.log("engine")
    assert "stream.stop: vhost is missing" in log
    assert "relay direction must be one of pull, push, not 'sideways'" in log
    assert "unknown command type 'no.such.command'" in log
