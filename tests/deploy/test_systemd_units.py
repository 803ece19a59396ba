"""The systemd units of deploy/ (README "Run in production"): rendered for this checkout they pass
`systemd-analyze verify` without a warning, cover every process `make run` starts (its API processes:
instances of one template, as many as asked for; nginx in front of the media port, the engine behind it
on loopback), restart on failure and log to the journal; the settings file gets its secrets (the media
front's token, which nginx and the engine share) when written, and the front's settings when upgraded."""

from __future__ import annotations

import configparser
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKERS = {
    "streamhub-worker-media.service": "-Q media",
    "streamhub-worker-transcode.service": "-Q transcode",
    "streamhub-worker-control.service": "-Q control",
}


@pytest.fixture(scope="module")
def units(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("units")
    subprocess.run(
        [str(ROOT / "deploy" / "render-units.sh"), str(folder), "streamhub", "/etc/streamhub", "3"], check=True
    )
    return folder


def read(unit: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(unit)
    return parser


def test_the_units_pass_systemd_analyze_verify(units):
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: `make test` installs systemd"
    names = sorted(path.name for path in units.iterdir()) + ["streamhub-api@2.service"]  # an instance too
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names], cwd=units, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # not even a warning (unknown key, bad value...)


def test_systemd_analyze_catches_a_broken_unit(units, tmp_path):
    """The check above can fail: the same verify refuses a unit with a command that does not exist."""
    broken = (units / "streamhub-engine.service").read_text().replace(str(ROOT / ".venv"), "/nonexistent")
    (tmp_path / "streamhub-broken.service").write_text(broken.replace("Requires=streamhub-migrate.service\n", ""))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "streamhub-broken.service"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "is not executable" in result.stderr


def test_every_process_of_make_run_has_a_unit_that_restarts_and_logs_to_the_journal(units):
    services = {path.name: read(path) for path in units.glob("*.service")}
    long_running = {name: unit for name, unit in services.items() if unit["Service"].get("Type") == "simple"}
    assert set(long_running) == {
        "streamhub-api@.service", "streamhub-tls-proxy.service", "streamhub-engine.service",
        "streamhub-media-front.service", "streamhub-beat.service", *WORKERS,
    }  # fmt: skip
    for name, unit in long_running.items():
        assert unit["Service"]["Restart"] == "on-failure", name
        assert unit["Service"]["StandardOutput"] == "journal", name
        assert unit["Service"]["EnvironmentFile"] == "/etc/streamhub/streamhub.env", name
        assert unit["Service"]["User"] == "streamhub", name
        assert unit["Install"]["WantedBy"] == "streamhub.target", name
    for name, queue in WORKERS.items():
        assert queue in services[name]["Service"]["ExecStart"]
    assert read(units / "streamhub.target")["Install"]["WantedBy"] == "multi-user.target"
    assert "streamhub-media-front.service" in (units / "streamhub.target").read_text()


def test_nginx_fronts_the_media_port_and_the_engine_listens_behind_it_on_loopback(units):
    """As `make run` starts them (scripts/media_front.py): the engine's media HTTP on the loopback upstream
    port, nginx (the same script, as a program) on the media port with the token both read from the settings."""
    engine = read(units / "streamhub-engine.service")["Service"]["ExecStart"]
    assert engine == f"{ROOT}/.venv/bin/python scripts/media_front.py --exec-engine"  # (tests/scripts: its command)
    front = read(units / "streamhub-media-front.service")["Service"]
    assert front["ExecStart"] == f"{ROOT}/.venv/bin/python scripts/media_front.py"
    assert front["KillMode"] == "mixed"  # SIGTERM to the script, which stops nginx
    template = (ROOT / "deploy" / "streamhub.env.example").read_text()
    assert "STREAMHUB_MEDIA_HTTP_PORT=3333\n" in template and "STREAMHUB_MEDIA_HTTP_UPSTREAM_PORT=3340\n" in template
    assert "STREAMHUB_MEDIA_FRONT_TOKEN=@MEDIA_FRONT_TOKEN@\n" in template
    assert "STREAMHUB_MEDIA_FRONT_LOG=/var/lib/streamhub/media-front/viewers.log\n" in template


def settings(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def write_env(path: Path) -> str:
    result = subprocess.run(
        [str(ROOT / "deploy" / "write-env.sh"), str(path), "root"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_settings_file_is_written_once_with_fresh_secrets_and_the_front_added_to_an_old_one(tmp_path):
    env = tmp_path / "streamhub.env"
    assert "fresh secrets" in write_env(env)
    written = settings(env)
    secrets = [written[name] for name in ("DJANGO_SECRET_KEY", "OME_ACCESS_TOKEN", "STREAMHUB_MEDIA_FRONT_TOKEN")]
    assert len(set(secrets)) == 3 and all(len(secret) >= 48 and "@" not in secret for secret in secrets)
    assert "@" not in env.read_text().replace("@...@", "")
    assert stat.S_IMODE(env.stat().st_mode) == 0o640
    before = env.read_text()
    assert write_env(env) == "" and env.read_text() == before  # kept as it is
    # A file written before the media front: its settings are added once, with a fresh token.
    old = tmp_path / "old.env"
    old.write_text(
        "".join(f"{line}\n" for line in before.splitlines() if "MEDIA_FRONT" not in line and "UPSTREAM" not in line)
    )
    assert "media front" in write_env(old)
    upgraded = settings(old)
    assert upgraded["STREAMHUB_MEDIA_HTTP_UPSTREAM_PORT"] == "3340"
    assert (
        len(upgraded["STREAMHUB_MEDIA_FRONT_TOKEN"]) >= 48
        and upgraded["DJANGO_SECRET_KEY"] == written["DJANGO_SECRET_KEY"]
    )
    again = old.read_text()
    assert write_env(old) == "" and old.read_text() == again


def test_the_target_starts_the_asked_number_of_api_servers_sharing_the_port(units):
    target = (units / "streamhub.target").read_text()
    assert "Wants=streamhub-api@1.service streamhub-api@2.service streamhub-api@3.service\n" in target
    api = read(units / "streamhub-api@.service")["Service"]["ExecStart"]
    assert api == f"{ROOT}/.venv/bin/python scripts/api_server.py"  # its own SO_REUSEPORT sockets, then Daphne


def test_the_env_template_runs_in_production_mode_with_placeholders_for_the_secrets():
    template = (ROOT / "deploy" / "streamhub.env.example").read_text()
    assert "STREAMHUB_PRODUCTION=1" in template
    assert "DJANGO_SECRET_KEY=@SECRET_KEY@" in template and "OME_ACCESS_TOKEN=@OME_ACCESS_TOKEN@" in template
