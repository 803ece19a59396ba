"""Engine nodes on loopback with WebRTC host candidates on 127.0.0.1, and ffmpeg publishing into them."""

from __future__ import annotations

import asyncio
import json
import subprocess

from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.node import EngineNode, NodeAddresses
from media_engine.webrtc.ice import IcePolicy
from media_engine.webrtc.service import WebRtcSettings

LOOPBACK_ICE = IcePolicy(host_addresses=("127.0.0.1",))


APPLICATION = ApplicationConfig("default", "app", hls_segment_duration=1.0, hls_segment_count=5)


async def start_node(policy: IcePolicy = LOOPBACK_ICE, control: StaticControlPlane | None = None) -> EngineNode:
    control = control or StaticControlPlane([APPLICATION])
    node = EngineNode(control, NodeAddresses("127.0.0.1", 0, "127.0.0.1", 0), WebRtcSettings(ice=policy))
    await node.start()
    return node


def ffmpeg_publish(rtmp_url: str, seconds: float = 30, size: str = "320x240") -> subprocess.Popen:
    """H.264 without B-frames + AAC stereo 48 kHz, at real-time speed."""
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-t", str(seconds), "-f", "flv", rtmp_url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def ffprobe_streams(url: str) -> dict:
    """{codec_type: stream} of what ffprobe reads at ``url`` (run off the event loop)."""
    process = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-rw_timeout", "10000000", "-show_streams", "-of", "json", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return {stream["codec_type"]: stream for stream in json.loads(stdout)["streams"]}


async def wait_until(condition, timeout: float, interval: float = 0.1):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = condition()
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s")
