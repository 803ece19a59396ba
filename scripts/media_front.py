"""`make run`'s web-server front of the media port: Debian's nginx, started by the supervisor
(scripts/run_platform.py) with the HTTP cache tier's own configuration (deploy/nginx/streamhub-media-cache.conf)
rendered for this machine, listening on the documented media port (STREAMHUB_MEDIA_HTTP_PORT, 3333) and handing
requests over to the engine on a loopback upstream port (STREAMHUB_MEDIA_HTTP_UPSTREAM_PORT, 3340), so that
playlists, segments and LL-HLS parts are answered at web-server speed.

Settings (environment, as for every StreamHub process): STREAMHUB_MEDIA_HTTP_FRONT (``nginx``, the default, or
``off``: the engine listens on the media port itself, as without a front; off too, with a log line saying so,
when nginx is not installed or its configuration does not pass ``nginx -t``).

This module also renders the configuration for tests and benchmarks (`render_cache_tier`, `nginx_main_config`),
so what they measure is what `make run` and the deploy folder ship. It knows no Django.

Run as a program (`python scripts/media_front.py`, the systemd unit streamhub-media-front.service) it is the
front of the systemd deployment: the same configuration, rendered at each start from the settings file's
STREAMHUB_MEDIA_FRONT_TOKEN (made by deploy/install.sh, read by the engine too) and STREAMHUB_MEDIA_FRONT_LOG
(the viewer log the engine reads; nginx's files go in its folder), nginx run in the foreground as its child,
the viewer log rotated as `make run` rotates it; it ends with nginx (SIGTERM: nginx stops too). With
``--exec-engine`` it becomes the engine (streamhub-engine.service): `manage.py runengine` on the loopback upstream
port behind that front, or on the media port itself when the front is off.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE_CONF = ROOT / "deploy" / "nginx" / "streamhub-media-cache.conf"
DEFAULT_UPSTREAM_PORT = 3340
# The viewer log is renamed (and nginx reopens it) once it is this big; the engine reads the old one to its end.
LOG_ROTATE_BYTES = 32 * 1024 * 1024


def _replace(text: str, old: str, new: str) -> str:
    """``old`` (a "(rendered)" line of the shipped file) replaced: the file and this renderer stay in step."""
    if text.count(old) != 1:
        raise ValueError(f"{CACHE_CONF.name} no longer has the line {old.strip()!r} to render")
    return text.replace(old, new)


def render_cache_tier(
    listen: str, engines: list[str], cache_folder: Path, *, front_token: str = "", viewer_log: Path | None = None
) -> str:
    """The shipped cache tier's configuration (an http-context file) listening on ``listen`` (``host:port``),
    in front of ``engines`` (``host:port`` each), caching under ``cache_folder``; with ``front_token`` sent to
    the engine (it then believes X-Real-IP) and the answers given from the cache logged to ``viewer_log``."""
    text = CACHE_CONF.read_text()
    text = _replace(text, "/var/cache/nginx/streamhub ", f"{cache_folder} ")
    text = _replace(text, "    listen 8080;", f"    listen {listen};")
    servers = "".join(f"    server {engine} max_fails=0;\n" for engine in engines)
    text = _replace(text, "    server 127.0.0.1:3333 max_fails=0;  # (rendered)\n", servers)
    if front_token:
        header = "proxy_set_header X-StreamHub-Front"
        text = _replace(text, f'{header} "";', f'{header} "{front_token}";')
    if viewer_log is not None:
        log = f"access_log {viewer_log} streamhub_viewers buffer=64k flush=1s if=$streamhub_from_cache;"
        text = _replace(text, "    access_log off;", f"    {log}")
    return text


def nginx_main_config(folder: Path, http: str, *, workers: str = "auto", head: str = "") -> Path:
    """``folder``/nginx.conf: a foreground nginx keeping its pid, error log and temporary files in ``folder``,
    with ``http`` as its http block's content (and ``head`` before everything: load_module...)."""
    # As root, the workers run as root too: the cache folder is the platform's (under var/), not nginx's.
    user = "user root;\n" if os.geteuid() == 0 else ""
    config = folder / "nginx.conf"
    config.write_text(
        f"{head}{user}daemon off; worker_processes {workers}; pid {folder}/nginx.pid;\n"
        f"error_log {folder}/error.log warn;\n"
        "events { worker_connections 8192; }\n"
        f"http {{ access_log off; client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;\n"
        f"{http}\n}}\n"
    )
    return config


def nginx_program() -> str | None:
    """Debian's nginx (in /usr/sbin, which a user's PATH may not have)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


def nginx_command(config: Path) -> list[str]:
    folder = config.parent
    return [nginx_program() or "nginx", "-e", str(folder / "error.log"), "-c", str(config), "-p", str(folder)]


@dataclass
class MediaFront:
    """The front's files under ``folder`` and what the engine behind it is told."""

    folder: Path
    listen: str  # host:port players use
    upstream_port: int
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def viewer_log(self) -> Path:
        return self.folder / "viewers.log"

    @property
    def config(self) -> Path:
        return self.folder / "nginx.conf"

    def prepare(self) -> str | None:
        """Write the configuration (with an empty cache); None if ``nginx -t`` takes it, else why not."""
        if nginx_program() is None:
            return "nginx is not installed (scripts/install-system-deps.sh run installs it)"
        shutil.rmtree(self.folder / "cache", ignore_errors=True)  # nothing of another run is served
        self.folder.mkdir(parents=True, exist_ok=True)
        http = render_cache_tier(
            self.listen,
            [f"127.0.0.1:{self.upstream_port}"],
            self.folder / "cache",
            front_token=self.token,
            viewer_log=self.viewer_log,
        )
        (self.folder / "streamhub-media-cache.conf").write_text(http)
        nginx_main_config(self.folder, f"include {self.folder}/streamhub-media-cache.conf;")
        check = subprocess.run([*nginx_command(self.config), "-t", "-q"], capture_output=True, text=True)
        if check.returncode != 0:
            return f"`nginx -t` refuses its configuration {self.config}: {check.stderr.strip()}"
        return None

    def command(self) -> list[str]:
        return nginx_command(self.config)

    def engine_arguments(self) -> list[str]:
        """runengine's arguments: its media HTTP port on loopback, behind the front."""
        return ["--http-host", "127.0.0.1", "--http-port", str(self.upstream_port)]

    def engine_environment(self) -> dict[str, str]:
        return {"STREAMHUB_MEDIA_FRONT_TOKEN": self.token, "STREAMHUB_MEDIA_FRONT_LOG": str(self.viewer_log)}

    def rotate_log(self, nginx_pid: int | None) -> bool:
        """Start a new viewer log once the current one is big (the engine finishes the old one first)."""
        try:
            if nginx_pid is None or self.viewer_log.stat().st_size < LOG_ROTATE_BYTES:
                return False
            self.viewer_log.replace(self.viewer_log.with_suffix(".log.1"))
            os.kill(nginx_pid, signal.SIGUSR1)  # nginx reopens its logs
        except OSError:
            return False
        return True


def media_front(var_dir: Path, environ: Mapping[str, str] = os.environ) -> MediaFront | None:
    """The front `make run` starts from the environment's settings, None when STREAMHUB_MEDIA_HTTP_FRONT is off."""
    kind = environ.get("STREAMHUB_MEDIA_HTTP_FRONT", "nginx").strip().lower()
    if kind in ("off", "none", "0", "false", "no", ""):
        return None
    if kind != "nginx":
        raise SystemExit(f"STREAMHUB_MEDIA_HTTP_FRONT must be nginx or off, not {kind!r}.")
    host = environ.get("STREAMHUB_MEDIA_HTTP_HOST", "0.0.0.0")
    port = int(environ.get("STREAMHUB_MEDIA_HTTP_PORT", "3333"))
    upstream = int(environ.get("STREAMHUB_MEDIA_HTTP_UPSTREAM_PORT", str(DEFAULT_UPSTREAM_PORT)))
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return MediaFront(var_dir / "media-front", listen, upstream)


def systemd_front(environ: Mapping[str, str] = os.environ) -> MediaFront | None:
    """The systemd deployment's front from the settings file (its files beside the viewer log
    STREAMHUB_MEDIA_FRONT_LOG, the token STREAMHUB_MEDIA_FRONT_TOKEN; `serve` checks both are set): None when
    it is off or nginx is not installed, and the engine serves the media port itself, as with `make run`."""
    front = media_front(Path("."), environ)
    if front is None or nginx_program() is None:
        return None
    log = Path(environ.get("STREAMHUB_MEDIA_FRONT_LOG", ""))
    return replace(front, folder=log.parent, token=environ.get("STREAMHUB_MEDIA_FRONT_TOKEN", ""))


def engine_command(environ: Mapping[str, str] = os.environ) -> list[str]:
    """runengine as the systemd engine unit starts it (`media_front.py --exec-engine`): its media HTTP on the
    loopback upstream port behind the front, or on the media port itself when there is no front."""
    front = systemd_front(environ)
    return [sys.executable, str(ROOT / "manage.py"), "runengine", *(front.engine_arguments() if front else [])]


def serve(environ: dict[str, str] | os._Environ = os.environ) -> int:
    """The systemd deployment's front (module docstring): nginx until it ends or SIGTERM/SIGINT; its exit status.
    With the front off (or no nginx installed) it says so and ends at once, successfully: the engine unit then
    serves the media port itself (`engine_command`)."""
    front = systemd_front(environ)
    if front is None:
        print("No nginx front on the media port (STREAMHUB_MEDIA_HTTP_FRONT=off, or nginx is not installed): "
              "the engine serves it itself.", flush=True)  # fmt: skip
        return 0
    token = environ.get("STREAMHUB_MEDIA_FRONT_TOKEN", "")
    log = environ.get("STREAMHUB_MEDIA_FRONT_LOG", "")
    if not token or not log:
        print("STREAMHUB_MEDIA_FRONT_TOKEN and STREAMHUB_MEDIA_FRONT_LOG must be set (deploy/install.sh writes them "
              "into the settings file): the engine believes nginx only with that token", file=sys.stderr)  # fmt: skip
        return 2
    if front.viewer_log != Path(log):
        print(f"STREAMHUB_MEDIA_FRONT_LOG must name a file called {front.viewer_log.name}", file=sys.stderr)
        return 2
    problem = front.prepare()
    if problem is not None:
        print(f"No nginx front on the media port: {problem}", file=sys.stderr)
        return 1
    stops: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, _frame: stops.append(signum))
    nginx = subprocess.Popen(front.command())
    print(f"nginx fronts the media port {front.listen}; the engine listens on 127.0.0.1:{front.upstream_port}.",
          flush=True)  # fmt: skip
    while not stops and nginx.poll() is None:
        front.rotate_log(nginx.pid)
        time.sleep(1)
    if stops:
        if nginx.poll() is None:
            nginx.terminate()  # nginx's fast shutdown
            try:
                nginx.wait(15)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait()
        return 0
    print(f"nginx ended (exit status {nginx.returncode}): see {front.folder / 'error.log'}", file=sys.stderr)
    return nginx.returncode or 1


if __name__ == "__main__":
    if sys.argv[1:] == ["--exec-engine"]:
        engine = engine_command()
        os.chdir(ROOT)
        os.execv(engine[0], engine)
    sys.exit(serve())
