"""Start the whole platform in the foreground: Redis (if none answers), the API server (Daphne),
the media engine node and a Celery worker; stop them all on Ctrl-C or when one of them dies.

Settings come from the environment (and `.env`), as for every StreamHub process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def read_dotenv() -> None:
    dotenv = ROOT / ".env"
    if not dotenv.exists():
        return
    for line in dotenv.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            os.environ.setdefault(key.strip(), value.strip().strip("'\""))


def redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def commands() -> list[tuple[str, list[str]]]:
    api_host = os.environ.get("STREAMHUB_API_HOST", "0.0.0.0")
    api_port = os.environ.get("STREAMHUB_API_PORT", "8081")
    celery = [PYTHON, "-m", "celery", "-A", "streamhub", "worker", "--loglevel", "INFO"]
    return [
        ("api", [PYTHON, "-m", "daphne", "-b", api_host, "-p", api_port, "streamhub.asgi:application"]),
        ("engine", [PYTHON, "manage.py", "runengine"]),
        # Media jobs (record, push...) block on I/O for hours: a thread pool of their own queue;
        # short control tasks get their own worker, so they never wait behind media.
        ("media-worker", [*celery, *"-Q media --pool threads --concurrency 32 --hostname media@%h".split()]),
        # Transcodes (CPU-bound, one per live stream and output profile, as long as the stream lasts):
        # a worker of their own, so encoding never slows records and pushes; add machines for more.
        ("transcode-worker", [*celery, *"-Q transcode --pool threads -c 16 --hostname transcode@%h".split()]),
        # -B: the control worker also runs beat (resuming jobs whose worker died).
        (
            "control-worker",
            [*celery, *"-Q control --concurrency 2 -B -s var/celerybeat-schedule".split(), "--hostname", "control@%h"],
        ),  # fmt: skip
    ]


def main() -> int:
    read_dotenv()
    os.chdir(ROOT)
    children: list[tuple[str, subprocess.Popen]] = []
    redis_url = urlparse(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    redis_host, redis_port = redis_url.hostname or "127.0.0.1", redis_url.port or 6379
    if not redis_answers(redis_host, redis_port):
        if redis_host not in ("127.0.0.1", "localhost") or not shutil.which("redis-server"):
            print(f"Redis at {redis_host}:{redis_port} does not answer and cannot be started here.", file=sys.stderr)
            return 1
        print(f"No Redis answers on {redis_host}:{redis_port}: starting one.")
        redis = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no"]
        )
        children.append(("redis", redis))
        for _ in range(50):
            if redis_answers(redis_host, redis_port):
                break
            time.sleep(0.1)

    for name, command in commands():
        print(f"starting {name}: {' '.join(command)}")
        children.append((name, subprocess.Popen(command)))

    stopping = False

    def stop(*_args) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    api_port = os.environ.get("STREAMHUB_API_PORT", "8081")
    print(f"StreamHub is up: API and admin on http://127.0.0.1:{api_port}/  (Ctrl-C stops everything)")
    exit_code = 0
    while not stopping:
        for name, process in children:
            if process.poll() is not None:
                print(f"{name} exited with {process.returncode}: stopping the platform", file=sys.stderr)
                exit_code = process.returncode or 1
                stopping = True
                break
        time.sleep(0.5)

    for _name, process in reversed(children):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for _name, process in reversed(children):
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
