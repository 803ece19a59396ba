#!/bin/sh
# Installs StreamHub as systemd services that start at boot and restart on failure (logs: journalctl).
# Run as root from the checkout that will serve (README "Run in production"):  deploy/install.sh
# Settings: STREAMHUB_USER (streamhub), STREAMHUB_CONF_DIR (/etc/streamhub), SYSTEMD_UNIT_DIR
# (/etc/systemd/system), STREAMHUB_API_PROCESSES (API server processes on the API port, one per CPU).
# Running it again updates the units and keeps the settings file.
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
user="${STREAMHUB_USER:-streamhub}"
conf="${STREAMHUB_CONF_DIR:-/etc/streamhub}"
units="${SYSTEMD_UNIT_DIR:-/etc/systemd/system}"
var=/var/lib/streamhub

"$root/scripts/install-system-deps.sh" deploy
make -C "$root" venv

id -u "$user" >/dev/null 2>&1 || useradd --system --home-dir "$var" --shell /usr/sbin/nologin "$user"
install -d -o "$user" -g "$user" "$var" "$var/media" "$var/media-front"
install -d -m 750 -g "$user" "$conf"
# The settings file, once, with fresh secrets (the media front's token too); later runs only add new settings.
"$root/deploy/write-env.sh" "$conf/streamhub.env" "$user"

# PostgreSQL: a role and a database named after the service user (peer authentication on the socket).
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl enable --now postgresql >/dev/null 2>&1 || true
  runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_roles WHERE rolname='$user'" | grep -q 1 \
    || runuser -u postgres -- createuser "$user"
  runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname='streamhub'" | grep -q 1 \
    || runuser -u postgres -- createdb -O "$user" streamhub
fi

# Before 2026-12 one API unit (streamhub-api.service) served the port alone: replaced by instances of
# streamhub-api@.service, which share it.
if [ -f "$units/streamhub-api.service" ]; then
  [ -d /run/systemd/system ] && systemctl disable --now streamhub-api.service >/dev/null 2>&1 || true
  rm -f "$units/streamhub-api.service"
fi
# Before 2026-12 the engine served the media port itself; now nginx does (streamhub-media-front) and the
# engine moves to its loopback upstream port: a running engine of before is restarted to free the port.
engine_moves=no
if [ -f "$units/streamhub-engine.service" ] && ! grep -q -- '--http-port' "$units/streamhub-engine.service"; then
  engine_moves=yes
fi
"$root/deploy/render-units.sh" "$units" "$user" "$conf" "${STREAMHUB_API_PROCESSES:-$(nproc)}"
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  [ "$engine_moves" = no ] || systemctl try-restart streamhub-engine.service
  systemctl enable --now redis-server >/dev/null 2>&1 || true
  systemctl enable --now streamhub.target
  systemctl start streamhub.target  # starts API instances added by a larger STREAMHUB_API_PROCESSES
  echo "StreamHub is running: systemctl status 'streamhub-*'; logs: journalctl -u 'streamhub-*' -f"
else
  echo "Units installed in $units, but systemd is not running here: start them on the next boot," \
    "or now with: systemctl enable --now streamhub.target"
fi
