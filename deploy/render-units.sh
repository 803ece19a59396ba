#!/bin/sh
# Writes StreamHub's systemd units into DEST with this checkout's paths filled in.
# Usage: deploy/render-units.sh DEST [USER] [CONF_DIR] [API_PROCESSES]   (install.sh uses it; so does
# the units' test). API_PROCESSES: instances of streamhub-api@.service the target starts (default:
# STREAMHUB_API_PROCESSES, else one per CPU).
set -eu
dest="$1"
user="${2:-streamhub}"
conf="${3:-/etc/streamhub}"
processes="${4:-${STREAMHUB_API_PROCESSES:-$(nproc)}}"
api_units="$(seq -f 'streamhub-api@%g.service' -s ' ' 1 "$processes")"
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$dest"
for unit in "$root"/deploy/systemd/*.service "$root"/deploy/systemd/*.target; do
  sed -e "s|@ROOT@|$root|g" -e "s|@USER@|$user|g" -e "s|@CONF@|$conf|g" -e "s|@API_UNITS@|$api_units|g" \
    "$unit" >"$dest/$(basename "$unit")"
done
