"""One API server process, as `make run` starts each of its STREAMHUB_API_PROCESSES and as the systemd
units run them: Daphne serving `streamhub.asgi` on listening sockets of its own with SO_REUSEPORT on
the API port (and on the TLS proxy's loopback port), beside the other API processes' sockets.

The sockets are handed over as systemd socket activation would (file descriptors 3, 4 ... with
LISTEN_FDS/LISTEN_PID, and Daphne's ``-e systemd:...`` endpoints): `make run`'s supervisor makes them
at each start (scripts/run_platform.py, `Child.start`) and passes the endpoints as arguments; started
without them (deploy/systemd/streamhub-api@.service) the process makes its own from the same settings.
Either way they are bound but not listening until the application is loaded (Django set up, URLs and
views imported: seconds): only then does the kernel give this process a share of the new connections,
so a restarting API process never holds connections it cannot answer yet while the others could.

    .venv/bin/python scripts/api_server.py [-e systemd:domain=INET:index=0 ...] streamhub.asgi:application
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPLICATION = "streamhub.asgi:application"
sys.path.insert(0, str(ROOT / "scripts"))

import run_platform  # noqa: E402


def inherited_sockets() -> int:
    """How many sockets the supervisor handed over (sd_listen_fds(3)); 0 when started on our own."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return 0
    return int(os.environ.get("LISTEN_FDS", "0"))


def main() -> None:
    run_platform.read_dotenv()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    arguments = sys.argv[1:] or [APPLICATION]
    count = inherited_sockets()
    if not count:
        addresses = run_platform.api_listen()
        listeners = [run_platform.listening_socket(host, port, listen=False) for host, port in addresses]
        arguments = [*run_platform.adopt_arguments(listeners), *arguments]
        run_platform._hand_over_sockets([listener.fileno() for listener in listeners])
        for listener in listeners:
            listener.detach()  # not closed: a listener may sit on 3, 4 ... itself, where its copy went
        count = len(listeners)
    # Load the application before taking connections.
    module, _, _ = arguments[-1].partition(":")
    importlib.import_module(module)
    for index in range(count):
        listener = socket.socket(fileno=run_platform.LISTEN_FDS_START + index)
        listener.listen(run_platform.API_LISTEN_BACKLOG)
        listener.detach()  # the descriptor stays Daphne's
    from daphne.cli import CommandLineInterface

    sys.argv = ["daphne", *arguments]
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
