"""`make run`'s supervisor (scripts/run_platform.py) facing an engine that cannot start: it restarts it
after 1, 2, then 4 s while the other children go on serving, and the engine comes up once it can.
A module of its own (apart from test_run_platform.py's shared platform) so that the suite's test
processes run the two at the same time."""

from __future__ import annotations

import re
import socket
import time

import pytest

from tests.integration.conftest import wait_for
from tests.integration.test_engine import publish, wait_live
from tests.integration.test_run_platform import SupervisedStreamHub, api_answers, engine_answers

pytestmark = [pytest.mark.services, pytest.mark.timeout(900)]


def test_a_crash_looping_engine_backs_off_longer_each_time(tmp_path, redis_url):
    platform = SupervisedStreamHub(tmp_path, redis_url)
    # Whatever fails, the supervisor goes: left running, it restarts its children for the rest of the suite.
    try:
        # Something else holds the engine's RTMP port: the engine exits at every start.
        squatter = socket.socket()
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", platform.rtmp_port))
        squatter.listen()
        try:
            platform.start_supervisor(wait_for_engine=False)
            log = lambda: platform.log("supervisor")  # noqa: E731
            wait_for(lambda: "restarting it in 4 s, crash 3 in a row" in log(), 180, lambda: log()[-3000:])
            delays = re.findall(r"engine exited with \d+: restarting it in (\d+) s", log())
            assert delays[:3] == ["1", "2", "4"], delays
            assert api_answers(platform)  # the others go on serving
            starts = len(platform.pids("engine"))
            time.sleep(3)
            assert len(platform.pids("engine")) <= starts + 1  # a pause, not a busy loop
        finally:
            squatter.close()
        # Once the port is free the next start succeeds.
        wait_for(lambda: engine_answers(platform), 60, lambda: platform.log("supervisor")[-3000:])
        publisher = publish(platform, "recovered", seconds=20)
        try:
            wait_live(platform, "recovered", publisher)
        finally:
            publisher.kill()
    finally:
        platform.stop()
