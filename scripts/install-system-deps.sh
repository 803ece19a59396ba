#!/usr/bin/env bash
# Installs the Debian packages StreamHub needs, only those whose command is missing.
# Usage: scripts/install-system-deps.sh [run|test|bench]
set -euo pipefail

purpose="${1:-run}"
# command:package pairs
needed=(
  "ffmpeg:ffmpeg"
  "ffprobe:ffmpeg"
  "redis-server:redis-server"
  "redis-cli:redis-tools"
)
python3 -c 'import ensurepip, venv' 2>/dev/null || needed+=("__python_venv__:python3-venv")
if [ "$purpose" = "test" ] || [ "$purpose" = "bench" ]; then
  needed+=("chromium:chromium")
fi

missing=()
for pair in "${needed[@]}"; do
  command="${pair%%:*}"
  package="${pair##*:}"
  case "$command" in
    __nginx_rtmp__) [ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] && continue ;;
    __python_venv__) ;;
    *) command -v "$command" >/dev/null 2>&1 && continue ;;
  esac
  missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
# de-duplicate
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "Installing Debian packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "Not root: please run  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
