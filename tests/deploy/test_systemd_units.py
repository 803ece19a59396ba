"""The systemd units of deploy/ (README "Run in production"): rendered for this checkout they pass
`systemd-analyze verify` without a warning, cover every process `make run` starts (its API processes:
instances of one template, as many as asked for), restart on failure and log to the journal."""

from __future__ import annotations

import configparser
import shutil
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
        "streamhub-beat.service", *WORKERS,
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


def test_the_target_starts_the_asked_number_of_api_servers_sharing_the_port(units):
    target = (units / "streamhub.target").read_text()
    assert "Wants=streamhub-api@1.service streamhub-api@2.service streamhub-api@3.service\n" in target
    api = read(units / "streamhub-api@.service")["Service"]["ExecStart"]
    assert api == f"{ROOT}/.venv/bin/python scripts/api_server.py"  # its own SO_REUSEPORT sockets, then Daphne


def test_the_env_template_runs_in_production_mode_with_placeholders_for_the_secrets():
    template = (ROOT / "deploy" / "streamhub.env.example").read_text()
    assert "STREAMHUB_PRODUCTION=1" in template
    assert "DJANGO_SECRET_KEY=@SECRET_KEY@" in template and "OME_ACCESS_TOKEN=@OME_ACCESS_TOKEN@" in template
