#!/bin/sh
# Writes StreamHub's systemd units into DEST with this checkout's paths filled in.
# Usage: deploy/render-units.sh DEST [USER] [CONF_DIR]   (install.sh uses it; so does the units' test)
set -eu
dest="$1"
user="${2:-streamhub}"
conf="${3:-/etc/streamhub}"
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$dest"
for unit in "$root"/deploy/systemd/*.service "$root"/deploy/systemd/*.target; do
  sed -e "s|@ROOT@|$root|g" -e "s|@USER@|$user|g" -e "s|@CONF@|$conf|g" "$unit" >"$dest/$(basename "$unit")"
done
