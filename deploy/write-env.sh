#!/bin/sh
# Writes StreamHub's settings file ENV_FILE from deploy/streamhub.env.example with fresh secrets (Django's
# secret key, the OME token, the media front's token), readable by GROUP, unless it exists: an existing
# file keeps its settings and gets those added since it was written (the media front's, with a fresh token).
# Usage: deploy/write-env.sh ENV_FILE [GROUP]   (install.sh uses it; so does the units' test)
set -eu
env_file="$1"
group="${2:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"
template="$root/deploy/streamhub.env.example"
secret() { "$root/.venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(48))'; }

if [ ! -f "$env_file" ]; then
  sed -e "s|@SECRET_KEY@|$(secret)|" -e "s|@OME_ACCESS_TOKEN@|$(secret)|" -e "s|@MEDIA_FRONT_TOKEN@|$(secret)|" \
    "$template" >"$env_file"
  [ -z "$group" ] || chgrp "$group" "$env_file"
  chmod 640 "$env_file"
  echo "Wrote $env_file with fresh secrets (the OME token: OME_ACCESS_TOKEN there)."
elif ! grep -q '^STREAMHUB_MEDIA_FRONT_TOKEN=' "$env_file"; then
  # Written before the media front (2026-12): its settings, as the template has them, with a fresh token.
  {
    echo
    sed -n '/^# nginx in front of the media HTTP port/,/^STREAMHUB_MEDIA_FRONT_LOG=/p' "$template" \
      | sed -e "s|@MEDIA_FRONT_TOKEN@|$(secret)|"
  } >>"$env_file"
  echo "Added the media front's settings (nginx on the media port, the engine behind it) to $env_file."
fi
