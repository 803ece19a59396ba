"""Run the whole platform in the foreground and keep it running: Redis (if none answers), the API
servers (Daphne, STREAMHUB_API_PROCESSES of them, one per CPU by default, all on the one API port)
and their HTTPS proxy (ports open while a vhost has a certificate), the media engine node, nginx in
front of the engine's media HTTP port (scripts/media_front.py; STREAMHUB_MEDIA_HTTP_FRONT=off: none),
three Celery workers and Celery beat.

Each API process gets listening sockets of its own on the API port (and on the TLS proxy's loopback
port), made here with SO_REUSEPORT and handed over as systemd would (`daphne -e systemd:...`): the
kernel spreads new connections over the processes, and the socket of a process that dies closes
with it, so connections go to the others until it is back.

A child that dies is started again after a pause that doubles while it keeps dying soon after its
start (1 s, 2 s, 4 s ... at most 30 s), so a crash loop never becomes a busy loop; the others go on
serving meanwhile. Ctrl-C (SIGINT) or SIGTERM stops every child; a second one kills them at once.

Settings come from the environment (and `.env`), as for every StreamHub process.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
sys.path.insert(0, str(ROOT))

from scripts.media_front import MediaFront, media_front  # noqa: E402
from streamhub.dev_secrets import development_secrets_in_use, is_loopback  # noqa: E402

# Restart pauses: the first after a crash, the ceiling while a child keeps crashing, and how long
# a child must have run for its next crash to count as a new first one.
FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
STABLE_AFTER = 30.0
# How long children get to finish after SIGTERM before they are killed.
STOP_TIMEOUT = 15.0
POLL_INTERVAL = 0.2
# The first file descriptor of sockets handed to a child (as systemd does: SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3


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


def check_development_secrets() -> None:
    """Say loudly when the API is reachable from the network with a development secret, and refuse
    to start in production mode (where the settings would refuse in every process anyway)."""
    api_host = os.environ.get("STREAMHUB_API_HOST", "0.0.0.0")
    in_use = development_secrets_in_use(os.environ)
    if not in_use or is_loopback(api_host):
        return
    production = os.environ.get("STREAMHUB_PRODUCTION", "").lower() in ("1", "true", "yes", "on")
    banner = "!" * 78
    what = " and ".join(in_use)
    verdict = "refusing to start (STREAMHUB_PRODUCTION is set)" if production else "anyone reaching it can use them"
    say(f"{banner}\nWARNING: the API listens on {api_host} with the development {what}: {verdict}.\n"
        f"Set them in the environment or .env (README: Run in production), or STREAMHUB_API_HOST=127.0.0.1.\n"
        f"{banner}", error=True)  # fmt: skip
    if production:
        raise SystemExit(2)


def api_processes() -> int:
    """STREAMHUB_API_PROCESSES: how many Daphne processes serve the API port (default: one per CPU)."""
    value = os.environ.get("STREAMHUB_API_PROCESSES", "").strip()
    count = int(value) if value else (os.cpu_count() or 1)
    if count < 1:
        raise SystemExit(f"STREAMHUB_API_PROCESSES must be 1 or more, not {value!r}.")
    return count


def api_listen() -> tuple[tuple[str, int], ...]:
    """Where each API process listens (on sockets made at each of its starts)."""
    addresses = [(os.environ.get("STREAMHUB_API_HOST", "0.0.0.0"), int(os.environ.get("STREAMHUB_API_PORT", "8081")))]
    if os.environ.get("STREAMHUB_API_TLS_PORTS", "8082,8444").strip():
        # HTTPS (8082, 8444): the TLS proxy decrypts and hands requests to this loopback-only port.
        addresses.append(("127.0.0.1", int(os.environ.get("STREAMHUB_API_TLS_UPSTREAM_PORT", "8090"))))
    return tuple(addresses)


def var_dir() -> Path:
    return Path(os.environ.get("STREAMHUB_VAR_DIR", str(ROOT / "var")))


def commands(front: MediaFront | None = None) -> list[tuple[str, list[str]]]:
    celery = [PYTHON, "-m", "celery", "-A", "streamhub"]
    worker = [*celery, "worker", "--loglevel", "INFO"]
    https = os.environ.get("STREAMHUB_API_TLS_PORTS", "8082,8444").strip()
    # Daphne (scripts/api_server.py) serves on the sockets of api_listen(), given at each start (Child.listen)
    # bound but not listening: it listens once the application is loaded, so that a restarting API process
    # takes no connection it cannot answer for seconds (the others answer them meanwhile).
    api = [PYTHON, "scripts/api_server.py", "streamhub.asgi:application"]
    return [
        *((f"api-{index}", api) for index in range(1, api_processes() + 1)),
        *([("tls-proxy", [PYTHON, "manage.py", "runtlsproxy"])] if https else []),
        ("engine", [PYTHON, "manage.py", "runengine", *(front.engine_arguments() if front else [])]),
        # nginx on the media port, in front of the engine (which then listens on a loopback port).
        *([("media-front", front.command())] if front else []),
        # Media jobs (record, push...) block on I/O for hours: a thread pool of their own queue;
        # short control tasks get their own worker, so they never wait behind media.
        ("media-worker", [*worker, *"-Q media --pool threads --concurrency 32 --hostname media@%h".split()]),
        # Transcodes (CPU-bound, one per live stream and output profile, as long as the stream lasts):
        # a worker of their own, so encoding never slows records and pushes; add machines for more.
        ("transcode-worker", [*worker, *"-Q transcode --pool threads -c 16 --hostname transcode@%h".split()]),
        ("control-worker", [*worker, *"-Q control --concurrency 2 --hostname control@%h".split()]),
        # Beat (resuming jobs whose worker died, deadlines...) is a child of its own, so that it is
        # restarted on its own and a control worker's restart never leaves a second beat behind.
        ("beat", [*celery, "beat", "--loglevel", "INFO", "-s", str(var_dir() / "celerybeat-schedule")]),
    ]


def listening_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A listening TCP socket on host:port that other processes' sockets share (SO_REUSEPORT): the
    kernel spreads new connections over them. ``listen=False``: bound only, so the kernel gives it no
    connection until its process calls listen() (`API_LISTEN_BACKLOG`) once it can serve them."""
    family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(address)
        if listen:
            listener.listen(API_LISTEN_BACKLOG)
    except OSError:
        listener.close()
        raise
    return listener


API_LISTEN_BACKLOG = 1024  # Twisted's own default (50) drops connections under bursts of clients


def check_api_ports_free() -> None:
    """Refuse to start beside another server on the API ports: SO_REUSEPORT would let a second
    platform (a second `make run`) share them silently instead of failing."""
    for host, port in api_listen():
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                raise SystemExit(
                    f"The API port {host}:{port} is in use ({error.strerror}): is StreamHub running already?"
                ) from None


def adopt_arguments(listeners: list[socket.socket]) -> list[str]:
    """Daphne's arguments to serve on inherited listening sockets (as systemd socket activation hands
    them over: file descriptors 3, 4 ... with LISTEN_FDS and LISTEN_PID, see `_hand_over_sockets`)."""
    return [
        arg
        for index, listener in enumerate(listeners)
        for arg in ("-e", f"systemd:domain={'INET6' if listener.family == socket.AF_INET6 else 'INET'}:index={index}")
    ]


def _hand_over_sockets(filenos: list[int]) -> None:
    """In the child before exec: the listening sockets on descriptors 3, 4 ... and the environment
    that says so (sd_listen_fds(3): LISTEN_FDS, LISTEN_FDNAMES, and LISTEN_PID naming this process)."""
    high = [fcntl.fcntl(fileno, fcntl.F_DUPFD_CLOEXEC, 100) for fileno in filenos]  # out of the way of 3, 4 ...
    for index, fileno in enumerate(high):
        os.dup2(fileno, LISTEN_FDS_START + index)  # inheritable: kept open through exec
    os.environ["LISTEN_FDS"] = str(len(filenos))
    os.environ["LISTEN_FDNAMES"] = ":".join(f"api{index}" for index in range(len(filenos)))  # Twisted wants names too
    os.environ["LISTEN_PID"] = str(os.getpid())


def _die_with_supervisor() -> None:
    """In the child before exec: its own process group (so a restart can kill what it started,
    e.g. a prefork pool) and SIGTERM when the supervisor dies, so no child outlives it."""
    os.setpgrp()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass


@dataclass
class Child:
    """One supervised process: how to start it, the running process and its restart history."""

    name: str
    command: list[str]
    # Addresses the child serves on sockets made here at each start (its last argument stays last).
    listen: tuple[tuple[str, int], ...] = ()
    env: dict[str, str] | None = None  # set in its environment beside the supervisor's
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    crashes: int = 0  # deaths in a row, each soon after its start
    restart_at: float | None = None

    def start(self) -> None:
        """Start the process; one that cannot even be started counts as a crash, restarted later."""
        self.started_at = time.monotonic()
        self.restart_at = None
        listeners: list[socket.socket] = []
        command = self.command
        try:
            for host, port in self.listen:
                listeners.append(listening_socket(host, port, listen=False))
            filenos = [sock.fileno() for sock in listeners]
            if listeners:
                command = [*self.command[:-1], *adopt_arguments(listeners), self.command[-1]]

            def prepare() -> None:
                _die_with_supervisor()
                if filenos:
                    _hand_over_sockets(filenos)

            # preexec_fn is safe here: the supervisor runs no threads.
            # close_fds=False: the sockets moved to 3, 4 ... in prepare() must stay open; every other
            # descriptor of this process is close-on-exec (PEP 446), the sockets' originals too.
            env = {**os.environ, **self.env} if self.env else None
            self.process = subprocess.Popen(command, preexec_fn=prepare, close_fds=not filenos, env=env)
        except OSError as error:
            self.process = None
            delay = self.schedule_restart(self.started_at)
            say(f"{self.name} could not be started ({error}): trying again in {delay:g} s", error=True)
            return
        finally:
            # The child holds its sockets now: closed here, they close when it dies (no connection then
            # waits on a dead process's socket).
            for sock in listeners:
                sock.close()
        say(f"started {self.name} (pid {self.process.pid}): {' '.join(command)}")

    @property
    def running(self) -> bool:
        """Started and not reaped yet (it may have ended: see `has_ended`)."""
        return self.process is not None and self.process.returncode is None

    def has_ended(self) -> bool:
        """Whether the process has ended. It is not reaped here, so its pid (and process group id)
        stay ours until `reap`: killing the group can never hit a process that reused the id."""
        if not self.running:
            return False
        try:
            return os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def reap(self) -> int:
        """Kill whatever is left in the child's process group (a prefork pool...) and collect its exit status."""
        _kill_group(self.process.pid, signal.SIGKILL)
        return self.process.wait()

    def schedule_restart(self, now: float) -> float:
        """Note a death; return the pause before the next start (doubling while it keeps crashing)."""
        self.crashes = self.crashes + 1 if now - self.started_at < STABLE_AFTER else 1
        delay = min(MAX_RESTART_DELAY, FIRST_RESTART_DELAY * 2 ** (self.crashes - 1))
        self.restart_at = now + delay
        return delay


def _kill_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with {returncode}"


def say(message: str, *, error: bool = False) -> None:
    try:
        print(f"[run_platform] {message}", file=sys.stderr if error else sys.stdout, flush=True)
    except OSError:  # nobody reads any more (`make run | tee log` after Ctrl-C): go on supervising
        pass


def start_redis(host: str, port: int) -> Child | None:
    """A Redis child if none answers (and one may be started here); None if one answers."""
    if redis_answers(host, port):
        return None
    if host not in ("127.0.0.1", "localhost") or not shutil.which("redis-server"):
        raise SystemExit(f"Redis at {host}:{port} does not answer and cannot be started here.")
    say(f"No Redis answers on {host}:{port}: starting one.")
    redis = Child(
        "redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    )
    redis.start()
    for _ in range(50):
        if redis_answers(host, port):
            break
        time.sleep(0.1)
    return redis


def start_front() -> MediaFront | None:
    """The media port's nginx front, ready to start (None, said why, when off: the engine takes the port)."""
    front = media_front(var_dir())
    if front is None:
        say("STREAMHUB_MEDIA_HTTP_FRONT=off: the engine serves the media port itself.")
        return None
    problem = front.prepare()
    if problem is not None:
        say(f"No nginx front on the media port ({problem}): the engine serves it itself.", error=True)
        return None
    say(f"nginx fronts the media port {front.listen}; the engine listens on 127.0.0.1:{front.upstream_port}.")
    return front


def supervise(children: list[Child], stop_requests: list[int], front: MediaFront | None = None) -> None:
    """Restart dead children (with backoff) until a stop is requested; rotate the front's viewer log."""
    nginx = next((child for child in children if child.name == "media-front"), None)
    while not stop_requests:
        if front is not None and nginx.running:
            front.rotate_log(nginx.process.pid)
        now = time.monotonic()
        for child in children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.start()
                continue
            if not child.running or not child.has_ended():
                continue
            status = child.reap()
            delay = child.schedule_restart(now)
            crashes = f", crash {child.crashes} in a row" if child.crashes > 1 else ""
            say(f"{child.name} {describe(status)}: restarting it in {delay:g} s{crashes}", error=True)
        time.sleep(POLL_INTERVAL)


def stop_all(children: list[Child], stop_requests: list[int]) -> None:
    """SIGTERM to every child (Redis last, the others need it to finish); SIGKILL after STOP_TIMEOUT
    or on a second Ctrl-C."""
    redis = [child for child in children if child.name == "redis"]
    others = [child for child in children if child.name != "redis"]
    for group in (others, redis):
        running = [child for child in group if child.running]
        for child in running:
            _kill_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while running and time.monotonic() < deadline and len(stop_requests) < 2:
            running = [child for child in running if not child.has_ended()]
            time.sleep(POLL_INTERVAL)
        for child in group:
            if child.running:
                child.reap()  # SIGKILL to stragglers and to what a child left behind
    say("stopped")


def main() -> int:
    read_dotenv()
    os.chdir(ROOT)
    check_development_secrets()
    check_api_ports_free()
    redis_url = urlparse(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    redis = start_redis(redis_url.hostname or "127.0.0.1", redis_url.port or 6379)
    front = start_front()
    children = ([redis] if redis else []) + [
        Child(name, command, api_listen() if name.startswith("api-") else ()) for name, command in commands(front)
    ]
    if front is not None:
        next(child for child in children if child.name == "engine").env = front.engine_environment()

    stop_requests: list[int] = []

    def request_stop(signum, _frame) -> None:
        stop_requests.append(signum)  # only that: printing here could re-enter a print in progress

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    for child in children:
        if child.process is None and child.restart_at is None:
            child.start()
    api_port = os.environ.get("STREAMHUB_API_PORT", "8081")
    say(f"StreamHub is up: API and admin on http://127.0.0.1:{api_port}/  (Ctrl-C stops everything)")
    try:
        supervise(children, stop_requests, front)
        say(f"{signal.Signals(stop_requests[0]).name}: stopping every process (again to kill them at once)")
    finally:
        stop_all(children, stop_requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
