"""A bare engine node (no Django) in a process of its own, WebRTC host candidates on loopback: the
"other node" of WebRTC relay tests.

    python tests/media_engine/webrtc/node_process.py

Prints ``ready RTMP_PORT HTTP_PORT`` once listening on free loopback ports; runs until killed.
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.media_engine.webrtc.conftest import start_node  # noqa: E402


async def main() -> None:
    node = await start_node()
    print("ready", node.rtmp.port, node.http.port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
