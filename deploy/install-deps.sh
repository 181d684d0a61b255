#!/usr/bin/env bash
# Installs everything camtunnel needs to build and test on Debian 12. Idempotent: packages that
# are already present are skipped, so re-running costs one dpkg query.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config clang clang-format clang-tidy libclang-rt-14-dev
  # libraries
  liburing-dev libssl-dev libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev prometheus-cpp-dev libsqlite3-dev libpq-dev libtomlplusplus-dev libsystemd-dev
  # third-party peers for the end-to-end tests and the demo
  python3 python3-gi python3-openssl python3-cryptography gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly ffmpeg curl openssl libnss-myhostname procps iproute2
  # the agent's hostile-network tests: a clock at 1970 (libfaketime) and an HTTP CONNECT proxy
  faketime tinyproxy
  # the storage tests against PostgreSQL: a throwaway cluster (initdb, postgres)
  postgresql-15
  # operations tests: promtool and the Prometheus server, dpkg-shlibdeps for the packages
  prometheus dpkg-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
