"""Players of one stream: the engine's CPU per RTMP player beside nginx-rtmp's, and per WHEP viewer.

One 720p30 ~2.6 Mb/s H.264 (no B-frames) + AAC stream, made once with ffmpeg, is published by ffmpeg with
``-c copy`` to each server in turn: StreamHub's engine node (a process of its own, WebRTC host
candidates on 127.0.0.1) and nginx with Debian's RTMP module (``live on``, chunk size 4096, one
worker). For each count of RTMP players, light players connect (the RTMP handshake, connect,
createStream, play, then they read and drop the bytes: a few asyncio processes, no ffmpeg), and the
server's CPU (user + system from /proc) is measured over a window. Per player = (with N - with none) / N.
WHEP viewers are aiortc peer connections in other processes: a few per process take the frames (without
decoding) and count them; the others, once connected, have their socket drained by a thread that counts
datagrams, checked against their share of what the engine sent (aiortc's receive path in Python costs
several times the engine's send path, so 200 full viewers would measure the bench, not the engine).
Players that received less than half the stream's bitrate during the window are reported.

    .venv/bin/python bench/players.py [--rtmp 1,50,200,500] [--whep 1,50,200] [--window 10]
        [--profile var/bench/players]   # py-spy of the engine at the largest counts: players-{rtmp,whep}.raw
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rtmp_hls import CACHE, free_port, source_file, wait_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SETTLE = 4.0  # seconds between players connecting and the CPU window
PLAYER_PROCESSES = 3
WHEP_PROCESSES = 4
# WHEP viewers per client process that go through aiortc's whole receive path and count video frames;
# the others are drained at their socket once connected (see WHEP_VIEWERS) and count datagrams.
WHEP_FULL_VIEWERS = 2

ENGINE = """
import asyncio, logging, sys
sys.path.insert(0, {root!r})
logging.basicConfig(level=logging.INFO, filename={log!r}, filemode="w")  # (players dropped: "too slow"...)
from media_engine.control import ApplicationConfig, StaticControlPlane
from media_engine.node import EngineNode, NodeAddresses
from media_engine.webrtc.ice import IcePolicy
from media_engine.webrtc.service import WebRtcSettings

# Datagrams sent by the engine (every RTP/RTCP/STUN packet goes through this method), written to a
# file each 0.5 s for the bench: CPU per datagram does not depend on whether the viewers keep up.
import asyncio.selector_events, os, time
sent = [0]
_sendto = asyncio.selector_events._SelectorDatagramTransport.sendto
def counted_sendto(self, data, addr=None):
    sent[0] += 1
    _sendto(self, data, addr)
asyncio.selector_events._SelectorDatagramTransport.sendto = counted_sendto
# The WHEP send path's segmented sends (UDP GSO, media_engine/webrtc/rtp_send.py) carry several datagrams.
import socket
_sendmsg = socket.socket.sendmsg
def counted_sendmsg(self, buffers, ancdata=(), flags=0, address=None):
    size = sum(len(b) for b in buffers)
    segment = next((int.from_bytes(data, "little") for level, kind, data in ancdata if kind == 103), size)
    result = _sendmsg(self, buffers, ancdata, flags, address)
    sent[0] += -(-size // segment)  # (after the send: one the kernel refused is sent again, and counted, per packet)
    return result
socket.socket.sendmsg = counted_sendmsg

async def report_sent():
    while True:
        with open({sent!r} + ".tmp", "w") as out:
            out.write(f"{{sent[0]}} {{time.monotonic()}}")
        os.replace({sent!r} + ".tmp", {sent!r})
        await asyncio.sleep(0.5)

async def main():
    asyncio.ensure_future(report_sent())
    node = EngineNode(StaticControlPlane([ApplicationConfig("default", "app")]),
                      NodeAddresses("127.0.0.1", {rtmp_port}, "127.0.0.1", {http_port}),
                      WebRtcSettings(ice=IcePolicy(host_addresses=("127.0.0.1",))))
    await node.start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

# Light RTMP players: after `play` they read into one shared buffer and only count the bytes.
PLAYERS = """
import asyncio, sys
sys.path.insert(0, {root!r})
from media_engine.rtmp import amf0
from media_engine.rtmp.chunks import ChunkWriter, MessageType
from media_engine.rtmp.handshake import HANDSHAKE_SIZE, client_c0c1

BUFFER = memoryview(bytearray(1 << 18))
received = []

class Player(asyncio.BufferedProtocol):
    def __init__(self, index):
        self.index = index
        self.handshake = bytearray()

    def connection_made(self, transport):
        self.transport = transport
        transport.write(client_c0c1())

    def get_buffer(self, size_hint):
        return BUFFER

    def buffer_updated(self, nbytes):
        if self.handshake is None:
            received[self.index] += nbytes
            return
        self.handshake += BUFFER[:nbytes]
        if len(self.handshake) < 1 + 2 * HANDSHAKE_SIZE:
            return
        out = ChunkWriter()
        def command(csid, stream_id, *values):
            return out.write(csid, MessageType.COMMAND_AMF0, stream_id, 0, amf0.encode(*values))
        self.transport.write(
            bytes(self.handshake[1 : 1 + HANDSHAKE_SIZE])
            + command(3, 0, "connect", 1.0, {{"app": "app", "tcUrl": "rtmp://127.0.0.1:{port}/app"}})
            + command(3, 0, "createStream", 2.0, None)
            + command(8, 1, "play", 0.0, None, "{stream}", -2.0)
        )
        received[self.index] += len(self.handshake) - 1 - 2 * HANDSHAKE_SIZE
        self.handshake = None

async def main():
    loop = asyncio.get_running_loop()
    received.extend([0] * {count})
    for i in range({count}):
        await loop.create_connection(lambda i=i: Player(i), "127.0.0.1", {port})
        if i % 20 == 19:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1)
    print("connected", flush=True)
    while await loop.run_in_executor(None, sys.stdin.readline):  # "mark": the bytes each player got so far
        print(" ".join(map(str, received)), flush=True)

asyncio.run(main())
"""

WHEP_VIEWERS = """
import asyncio, os, select, socket, sys, threading
sys.path.insert(0, {root!r})
import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from media_engine.webrtc import ice, passthrough
from media_engine.webrtc.ice import IcePolicy, use_policy

POLICY = IcePolicy(host_addresses=("127.0.0.1",))
ice.install(); passthrough.install()
frames = {{}}  # full viewers: video frames received
datagrams = {{}}  # drained viewers: datagrams received

class Drain:
    # Viewers past the first {full} of this process: once aiortc has done ICE and DTLS, their socket is
    # read here (a thread, recvfrom_into in a loop, ~2 us a datagram) instead of by aiortc's receive path
    # in Python (SRTP, RTP parsing, jitter buffer: several times the engine's cost per datagram), so a few
    # processes can take what 200 viewers are sent. STUN (ICE consent checks) still goes to aioice.
    def __init__(self, loop):
        self.loop, self.epoll, self.owners = loop, select.epoll(), {{}}
        threading.Thread(target=self.run, daemon=True).start()

    def add(self, index, pc):
        datagrams[index] = 0
        seen = set()
        for transceiver in pc.getTransceivers():
            for protocol in transceiver.receiver.transport.transport._connection._protocols:
                fd = protocol.transport.get_extra_info("socket").fileno()
                if fd in seen:
                    continue  # (bundled: one socket for audio and video)
                seen.add(fd)
                protocol.transport.pause_reading()
                sock = socket.socket(fileno=os.dup(fd))
                sock.setblocking(False)
                self.owners[sock.fileno()] = (index, sock, protocol)
                self.epoll.register(sock.fileno(), select.EPOLLIN)

    def run(self):
        buffer = bytearray(4096)
        while True:
            for fd, _ in self.epoll.poll():
                index, sock, protocol = self.owners[fd]
                count = 0
                while True:
                    try:
                        size, address = sock.recvfrom_into(buffer)
                    except BlockingIOError:
                        break
                    count += 1
                    if buffer[0] < 2:
                        self.loop.call_soon_threadsafe(protocol.datagram_received, bytes(buffer[:size]), address)
                datagrams[index] += count

async def viewer(http, index):
    pc = RTCPeerConnection(POLICY.rtc_configuration())
    connected = asyncio.Event()
    pc.on("connectionstatechange", lambda: pc.connectionState == "connected" and connected.set())
    frames[index] = 0

    @pc.on("track")
    def on_track(track):
        passthrough.receive_encoded(track)
        async def read():
            try:
                while True:
                    await track.recv()
                    if track.kind == "video":
                        frames[index] += 1
            except MediaStreamError:  # the engine or this process closing
                pass
        asyncio.ensure_future(read())

    with use_policy(POLICY):
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
    # A receive buffer as large as the kernel allows (net.core.rmem_max): with a few hundred viewers in
    # a few processes, the default one overflows whenever this process waits for a core.
    for transceiver in pc.getTransceivers()[:1]:
        for protocol in transceiver.receiver.transport.transport._connection._protocols:
            protocol.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
    async with http.post({url!r}, data=pc.localDescription.sdp, headers={{"Content-Type": "application/sdp"}}) as r:
        assert r.status == 201, await r.text()
        answer = await r.text()
    with use_policy(POLICY):
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await asyncio.wait_for(connected.wait(), 120)
    if index >= {full}:  # at once: a few hundred of aiortc's receive paths would swamp this process
        drain.add(index, pc)
    return pc

async def main():
    global drain
    loop = asyncio.get_running_loop()
    drain = Drain(loop)
    async with aiohttp.ClientSession() as http:
        pcs = []
        for first in range(0, {count}, 10):  # ten at a time: ICE and DTLS handshakes are CPU work
            pcs += await asyncio.gather(*(viewer(http, i) for i in range(first, min(first + 10, {count}))))
        print("connected", flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            # "f<frames>" for a full viewer, "d<datagrams>" for a drained one
            print(" ".join(f"d{{datagrams[i]}}" if i in datagrams else f"f{{frames[i]}}" for i in range({count})),
                  flush=True)

asyncio.run(main())
"""


PRIORITY = -10  # nice value of what the bench starts, when run as root (see `raise_priority`)


def raise_priority() -> None:
    """In a child before exec: run ahead of unrelated load on a shared machine. Otherwise, with a load
    average of 20 on 2 cores, the engine gets a fair share (about 10 % of a core) and its CPU figure is
    capped by the scheduler, not by its work, while starved viewers lag (whole frames lost)."""
    if os.geteuid() == 0:
        os.nice(PRIORITY)


def sent_rate(path: Path, start: tuple[int, float] | None = None) -> tuple[int, float]:
    """(datagrams, time) the engine last wrote; with ``start``: (datagrams since, seconds since)."""
    count, at = path.read_text().split()
    now = (int(count), float(at))
    return now if start is None else (now[0] - start[0], now[1] - start[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def tree_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def children(pid: int) -> list[int]:
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


class Clients:
    """Client processes that together hold ``count`` players; ``mark()`` -> per-player counters."""

    def __init__(self, script: str, count: int, processes: int, **values: object) -> None:
        shares = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-c", script.format(root=str(ROOT), count=share, **values)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=raise_priority,
            )
            for share in shares
            if share
        ]
        for process in self.processes:
            line = process.stdout.readline()
            if not line.startswith("connected"):
                self.close()
                raise SystemExit(f"clients did not connect (see the client's traceback above): {line!r}")

    def mark(self) -> list[tuple[str, int]]:
        """Each player's counter as (kind, value): kind "" for RTMP players' bytes, "f" for a WHEP
        viewer's video frames, "d" for a drained WHEP viewer's datagrams."""
        values: list[tuple[str, int]] = []
        for process in self.processes:
            process.stdin.write("mark\n")
            process.stdin.flush()
        for process in self.processes:
            for token in process.stdout.readline().split():
                kind = token[0] if token[0].isalpha() else ""
                values.append((kind, int(token[len(kind) :])))
        return values

    def close(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


def udp_receive_buffer_errors() -> int:
    """Datagrams the kernel dropped because a receiving socket's buffer was full (machine-wide)."""
    lines = Path("/proc/net/snmp").read_text().splitlines()
    header, values = [line.split() for line in lines if line.startswith("Udp:")][:2]
    return int(values[header.index("RcvbufErrors")])


def measure(pids: list[int], window: float, clients: Clients | None) -> tuple[float, list[tuple[str, int]]]:
    """CPU % of a core of ``pids`` over ``window`` s, and what each client got meanwhile (see `Clients.mark`)."""
    before = clients.mark() if clients else []
    start_cpu, start = tree_cpu(pids), time.monotonic()
    time.sleep(window)
    busy = 100 * (tree_cpu(pids) - start_cpu) / (time.monotonic() - start)
    after = clients.mark() if clients else []
    return busy, [(kind, b - a) for (kind, a), (_, b) in zip(before, after, strict=True)]


def publish(url: str, source: Path) -> subprocess.Popen:
    return subprocess.Popen(
        ["ffmpeg", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(source), "-c", "copy",
         "-f", "flv", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=raise_priority,
    )  # fmt: skip


def start_nginx(folder: Path, port: int) -> subprocess.Popen:
    config = folder / "nginx.conf"
    config.write_text(f"""
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
worker_rlimit_nofile 8192;
rtmp {{
  server {{
    listen 127.0.0.1:{port};
    chunk_size 4096;
    application app {{ live on; }}
  }}
}}
""")
    return subprocess.Popen(
        ["nginx", "-c", str(config), "-p", str(folder)], stderr=subprocess.DEVNULL, preexec_fn=raise_priority
    )


def profiler(pid: int, window: float, output: Path | None) -> subprocess.Popen | None:
    """py-spy (as root) recording ``pid`` for the window, as collapsed stacks; None without ``output``."""
    if output is None:
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "--rate", "50",
         "--pid", str(pid), "--duration", str(int(window)), "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def rtmp_rows(name: str, pids: list[int], port: int, counts: list[int], window: float, profile: Path | None):
    idle, _ = measure(pids, window, None)
    print(f"{name}: publisher and no player: {idle:.1f} % of a core", flush=True)
    rows = {}
    for count in counts:
        clients = Clients(PLAYERS, count, PLAYER_PROCESSES, port=port, stream="s")
        try:
            time.sleep(SETTLE)
            spy = profiler(pids[0], window, profile) if count == max(counts) else None
            busy, got = measure(pids, window, clients)
            if spy is not None:
                spy.wait()
            rate = [8 * b / window / 1e6 for _, b in got]
            starved = sum(1 for r in rate if r < 1.3)
            median = sorted(rate)[len(rate) // 2]
            rows[count] = (busy, (busy - idle) / count, min(rate), starved)
            print(
                f"{name}: {count:4d} RTMP players: {busy:5.1f} % ({rows[count][1]:.3f} % per player; "
                f"median player {median:.2f} Mb/s, slowest {min(rate):.2f}, {starved} below 1.3 Mb/s)",
                flush=True,
            )
        finally:
            clients.close()
        time.sleep(2)
    return idle, rows


def suffixed(path: Path | None, kind: str) -> Path | None:
    return None if path is None else path.with_name(f"{path.name}-{kind}.raw")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtmp", default="1,50,200,500", help="RTMP player counts")
    parser.add_argument("--whep", default="1,50,200", help="WHEP viewer counts (empty: none)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of each CPU measurement")
    parser.add_argument("--only", choices=["engine", "nginx"], help="RTMP players of one server only")
    parser.add_argument("--profile", type=Path, help="py-spy of the engine at the largest counts (PROFILE-rtmp.raw...)")
    args = parser.parse_args()
    rtmp_counts = [int(n) for n in args.rtmp.split(",") if n]
    whep_counts = [int(n) for n in args.whep.split(",") if n]
    source = source_file(b_frames=False)
    results = {}

    with tempfile.TemporaryDirectory(prefix="bench-players-") as folder:
        if args.only != "engine" and rtmp_counts:
            port = free_port()
            Path(folder).chmod(0o755)
            nginx = start_nginx(Path(folder), port)
            encoder = None
            try:
                wait_port(port)
                encoder = publish(f"rtmp://127.0.0.1:{port}/app/s", source)
                time.sleep(3)
                pids = children(nginx.pid)
                results["nginx-rtmp"] = rtmp_rows("nginx-rtmp", pids, port, rtmp_counts, args.window, None)
            finally:
                if encoder is not None:
                    encoder.kill()
                    encoder.wait()
                nginx.send_signal(signal.SIGQUIT)
                nginx.wait(timeout=10)

        if args.only != "nginx":
            rtmp_port, http_port = free_port(), free_port()
            log = str(CACHE / "players-engine.log")
            sent_file = CACHE / "players-engine.sent"
            script = ENGINE.format(
                root=str(ROOT), rtmp_port=rtmp_port, http_port=http_port, log=log, sent=str(sent_file)
            )
            engine = subprocess.Popen(
                [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, preexec_fn=raise_priority
            )
            encoder = None
            try:
                assert engine.stdout.readline().startswith("ready")
                encoder = publish(f"rtmp://127.0.0.1:{rtmp_port}/app/s", source)
                time.sleep(3)
                if rtmp_counts:
                    results["StreamHub"] = rtmp_rows(
                        "StreamHub", [engine.pid], rtmp_port, rtmp_counts, args.window, suffixed(args.profile, "rtmp")
                    )
                whep = {}
                if whep_counts:
                    idle, _ = measure([engine.pid], args.window, None)
                for count in whep_counts:
                    url = f"http://127.0.0.1:{http_port}/app/s?direction=whep"
                    clients = Clients(WHEP_VIEWERS, count, min(WHEP_PROCESSES, count), url=url, full=WHEP_FULL_VIEWERS)
                    try:
                        time.sleep(SETTLE)
                        last = count == max(whep_counts)
                        spy = profiler(engine.pid, args.window, suffixed(args.profile, "whep")) if last else None
                        dropped, sent = udp_receive_buffer_errors(), sent_rate(sent_file)
                        busy, got = measure([engine.pid], args.window, clients)
                        dropped = udp_receive_buffer_errors() - dropped
                        datagrams, seconds = sent_rate(sent_file, sent)
                        per_datagram = 1e4 * (busy - idle) / (datagrams / seconds)  # us of CPU beyond idle
                        if spy is not None:
                            spy.wait()
                        fps = sorted(n / args.window for kind, n in got if kind == "f")
                        starved = sum(1 for f in fps if f < 25)
                        # A drained viewer's datagrams beside its share of what the engine sent meanwhile.
                        share = datagrams / seconds * args.window / count
                        drained = sorted(n / share for kind, n in got if kind == "d")
                        short = sum(1 for part in drained if part < 0.95)
                        received = (
                            f"drained viewers ({len(drained)}): median got {100 * drained[len(drained) // 2]:.0f} % "
                            f"of its datagrams, least {100 * drained[0]:.0f} %, {short} below 95 %; "
                            if drained
                            else ""
                        )
                        whep[count] = (busy, (busy - idle) / count, per_datagram, datagrams / seconds / count)
                        print(
                            f"StreamHub: {count:4d} WHEP viewers: {busy:5.1f} % ({whep[count][1]:.3f} % per viewer; "
                            f"full viewers ({len(fps)}) video frames/s: median {fps[len(fps) // 2]:.1f}, "
                            f"slowest {fps[0]:.1f}, {starved} below 25; {received}"
                            f"engine sent {datagrams / seconds:.0f} datagrams/s "
                            f"({datagrams / seconds / count:.0f} per viewer: the whole stream is the 1-viewer row's), "
                            f"{per_datagram:.1f} us CPU each; {dropped} UDP datagrams dropped by full receive buffers "
                            "on this machine; "
                            f"load average {os.getloadavg()[0]:.1f})",
                            flush=True,
                        )
                    finally:
                        clients.close()
                    time.sleep(3)
            finally:
                if encoder is not None:
                    encoder.kill()
                    encoder.wait()
                engine.kill()
                engine.wait()

    if rtmp_counts and len(results) == 2:
        print("\nCPU per RTMP player (% of one core; one 720p30 ~2.6 Mb/s stream; same run)")
        print("| players | StreamHub | nginx-rtmp | ratio | StreamHub total | nginx-rtmp total |")
        print("| --- | --- | --- | --- | --- | --- |")
        for count in rtmp_counts:
            ours, theirs = results["StreamHub"][1][count], results["nginx-rtmp"][1][count]
            ratio = ours[1] / theirs[1] if theirs[1] > 0 else float("inf")
            print(f"| {count} | {ours[1]:.3f} | {theirs[1]:.3f} | {ratio:.1f}x | {ours[0]:.1f} % | {theirs[0]:.1f} % |")
    if whep_counts and args.only != "nginx":
        # A viewer that gets the whole stream costs the datagrams one viewer gets (the first count's
        # rate per viewer) at the CPU per datagram measured: a figure that holds when the engine or the
        # bench's viewers fall behind on a loaded machine.
        full_rate = next(iter(whep.values()))[3]
        print(f"\nCPU per WHEP viewer (% of one core; a whole stream is {full_rate:.0f} datagrams/s per viewer)")
        print("| viewers | StreamHub per viewer | us per datagram | per viewer at the whole stream | total |")
        print("| --- | --- | --- | --- | --- |")
        for count, (busy, per, per_datagram, _) in whep.items():
            print(f"| {count} | {per:.3f} | {per_datagram:.1f} | {per_datagram * full_rate / 1e4:.3f} | {busy:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
