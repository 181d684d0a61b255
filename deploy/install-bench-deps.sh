#!/usr/bin/env bash
# The benchmarks' baselines and traffic tools (bench/), on top of deploy/install-deps.sh. Not
# needed to build or test. Idempotent.
set -euo pipefail
packages=(iperf3 haproxy stunnel4 socat openssh-server openssh-client linux-perf)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages' own services are not wanted on a bench box: our scripts start their own.
for unit in haproxy stunnel4 ssh; do
  $sudo systemctl disable --now "$unit" >/dev/null 2>&1 || true
done
