"""A bare engine node (no Django) in a process of its own, for job tests whose PyAV clients must not
share a GIL with the engine (PyAV opens outputs without releasing it).

    python tests/tools/engine_process.py

Serves application ``app`` of vhost ``default`` on free loopback ports and prints
``ready RTMP_PORT HTTP_PORT`` once listening; runs until killed.
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from media_engine.control import ApplicationConfig, StaticControlPlane  # noqa: E402
from media_engine.node import EngineNode, NodeAddresses  # noqa: E402


async def main() -> None:
    addresses = NodeAddresses(rtmp_host="127.0.0.1", rtmp_port=0, http_host="127.0.0.1", http_port=0)
    config = ApplicationConfig("default", "app", hls_segment_duration=1.0, hls_segment_count=5)
    node = EngineNode(StaticControlPlane([config]), addresses)
    await node.start()
    print("ready", node.rtmp.port, node.http.port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
