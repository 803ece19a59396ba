"""One API server process as `make run` starts each of its STREAMHUB_API_PROCESSES: Daphne serving
`streamhub.asgi` on listening sockets of its own with SO_REUSEPORT on the API port (and on the TLS
proxy's loopback port), beside the other API processes' sockets on the same ports.

For the systemd units (deploy/systemd/streamhub-api@.service, one instance per process): it makes
the sockets (scripts/run_platform.py's `listening_socket`, from the same settings), puts them on
file descriptors 3, 4 ... as systemd socket activation would, and becomes Daphne (exec: the same
process, so the sockets close when it ends and the kernel sends new connections to the others).

    .venv/bin/python scripts/api_server.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import run_platform  # noqa: E402


def main() -> None:
    run_platform.read_dotenv()
    os.chdir(ROOT)
    listeners = [run_platform.listening_socket(host, port) for host, port in run_platform.api_listen()]
    command = [sys.executable, "-m", "daphne", *run_platform.adopt_arguments(listeners), "streamhub.asgi:application"]
    run_platform._hand_over_sockets([listener.fileno() for listener in listeners])
    os.execv(sys.executable, command)


if __name__ == "__main__":
    main()
