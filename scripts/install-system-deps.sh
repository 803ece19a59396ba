#!/usr/bin/env bash
# Installs the Debian packages StreamHub needs, only those whose command is missing.
# Usage: scripts/install-system-deps.sh [run|test|bench|deploy]
set -euo pipefail

purpose="${1:-run}"
# command:package pairs
needed=(
  "ffmpeg:ffmpeg"
  "ffprobe:ffmpeg"
  "redis-server:redis-server"
  "redis-cli:redis-tools"
  "__libsrt__:libsrt1.5-gnutls"
  # `make run` puts nginx in front of the media port (scripts/media_front.py; nginx-light serves as well).
  "nginx:nginx"
)
python3 -c 'import ensurepip, venv' 2>/dev/null || needed+=("__python_venv__:python3-venv")
if [ "$purpose" = "test" ] || [ "$purpose" = "bench" ]; then
  needed+=(
    "chromium:chromium"
    "__nginx_rtmp__:libnginx-mod-rtmp"
    "gst-launch-1.0:gstreamer1.0-tools"
    "__gst_rtsp_server__:gir1.2-gst-rtsp-server-1.0"
    "__gst_plugins__:gstreamer1.0-plugins-good"
    "__gst_x264__:gstreamer1.0-plugins-ugly"
    "__gst_libav__:gstreamer1.0-libav"
    "__python3_gi__:python3-gi"
    # SIP calls' far end in tests (WCS /call/*): Debian's SIPp.
    "sipp:sip-tester"
  )
fi

# systemd units (deploy/): `systemd-analyze verify` in the tests; PostgreSQL for a production install.
if [ "$purpose" = "test" ] || [ "$purpose" = "deploy" ]; then
  needed+=("systemd-analyze:systemd")
fi
if [ "$purpose" = "deploy" ]; then
  needed+=("pg_ctlcluster:postgresql")
fi
if [ "$purpose" = "bench" ]; then
  needed+=("wrk:wrk")  # bench/api_throughput.py
fi

missing=()
for pair in "${needed[@]}"; do
  command="${pair%%:*}"
  package="${pair##*:}"
  case "$command" in
    __nginx_rtmp__) [ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] && continue ;;
    __python_venv__) ;;
    __libsrt__) ldconfig -p 2>/dev/null | grep -q "libsrt-.*\.so\.1\.5" && continue ;;
    __gst_rtsp_server__) compgen -G "/usr/lib/*/girepository-1.0/GstRtspServer-1.0.typelib" >/dev/null && continue ;;
    __gst_plugins__) gst-inspect-1.0 rtph264pay >/dev/null 2>&1 && continue ;;
    __gst_x264__) gst-inspect-1.0 x264enc >/dev/null 2>&1 && continue ;;
    __gst_libav__) gst-inspect-1.0 avenc_aac >/dev/null 2>&1 && continue ;;
    __python3_gi__) /usr/bin/python3 -c "import gi" >/dev/null 2>&1 && continue ;;
    nginx) { command -v nginx || [ -x /usr/sbin/nginx ]; } >/dev/null 2>&1 && continue ;;
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
