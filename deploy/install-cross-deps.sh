#!/usr/bin/env bash
# Installs what the agent's cross builds (make agent-armhf / agent-arm64) and the qemu-user test
# (make test-cross) need on Debian 12: the Debian cross compilers, OpenSSL for the camera
# architectures from the multiarch archive (libssl-dev:armhf, libssl-dev:arm64) and qemu-user.
# Idempotent, like install-deps.sh: architectures already added and packages already present are
# skipped, so re-running costs a few dpkg queries.
#
#   deploy/install-cross-deps.sh            # armhf + arm64 + qemu-user
#   deploy/install-cross-deps.sh armhf      # only what one architecture needs (+ qemu for armhf)
set -euo pipefail

arches=("$@")
if [ ${#arches[@]} -eq 0 ]; then arches=(armhf arm64); fi

packages=()
for a in "${arches[@]}"; do
  case "$a" in
    armhf) packages+=(g++-arm-linux-gnueabihf binutils-arm-linux-gnueabihf libssl-dev:armhf
                      qemu-user) ;;
    arm64) packages+=(g++-aarch64-linux-gnu binutils-aarch64-linux-gnu libssl-dev:arm64) ;;
    *) echo "install-cross-deps.sh: unknown architecture '$a' (armhf, arm64)" >&2; exit 2 ;;
  esac
done
# Native tools the builds and the footprint measurements use.
packages+=(cmake ninja-build pkg-config file)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

new_arch=0
foreign=" $(dpkg --print-foreign-architectures | tr '\n' ' ') "
for a in "${arches[@]}"; do
  if [[ "$foreign" != *" $a "* ]]; then
    echo "adding dpkg architecture $a"
    $sudo dpkg --add-architecture "$a"
    new_arch=1
  fi
done

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ] && [ $new_arch -eq 0 ]; then
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# A mirror in mid-sync can fail one index (apt then ignores it and uses the others); that is not a
# reason to stop: the version pinning below only picks versions every architecture has.
$sudo apt-get update -qq || echo "install-cross-deps.sh: apt-get update reported errors; continuing" >&2

# libssl-dev and libssl3 are Multi-Arch: same, so every installed architecture must carry exactly
# the same version. The archive's indexes for the architectures need not agree (a security index
# can be newer, or missing, for one of them), so pick the newest version that all of them offer
# and install it for the native architecture too (it may move the native libssl a patch release).
native=$(dpkg --print-architecture)
ssl_arches=("$native")
want_ssl=0
for p in "${missing[@]}"; do
  case "$p" in libssl-dev:*) want_ssl=1; ssl_arches+=("${p#libssl-dev:}") ;; esac
done
if [ $want_ssl -eq 1 ]; then
  # ...and every other foreign architecture that already has libssl3 (it must move in step).
  for a in "${arches[@]}" $(dpkg --print-foreign-architectures); do
    case " ${ssl_arches[*]} " in *" $a "*) continue ;; esac
    have=$(dpkg-query -W -f='${Status}' "libssl3:$a" 2>/dev/null || true)
    if [[ " ${arches[*]} " == *" $a "* ]] || [ "$have" = "install ok installed" ]; then
      ssl_arches+=("$a")
    fi
  done
  common=""
  for a in "${ssl_arches[@]}"; do
    vs=$(apt-cache madison "libssl-dev:$a" | awk -F'|' '{gsub(/ /,"",$2); print $2}' | sort -u)
    if [ -z "$common" ]; then common="$vs"; else common=$(comm -12 <(echo "$common") <(echo "$vs")); fi
  done
  version=""
  for v in $common; do
    if [ -z "$version" ] || dpkg --compare-versions "$v" gt "$version"; then version="$v"; fi
  done
  if [ -z "$version" ]; then
    echo "install-cross-deps.sh: no libssl-dev version offered for all of: ${ssl_arches[*]}" >&2
    exit 1
  fi
  current=$(dpkg-query -W -f='${Version}' "libssl3:$native" 2>/dev/null || true)
  if [ -n "$current" ] && dpkg --compare-versions "$version" lt "$current"; then
    echo "install-cross-deps.sh: WARNING: libssl3:$native $current -> $version (the newest" \
         "version every architecture offers; a mirror index may be out of step)" >&2
  fi
  rest=()
  for p in "${missing[@]}"; do
    case "$p" in libssl-dev:*) ;; *) rest+=("$p") ;; esac
  done
  missing=("${rest[@]}")
  for a in "${ssl_arches[@]}"; do
    missing+=("libssl-dev:$a=$version" "libssl3:$a=$version")
  done
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $sudo apt-get install -y -qq --no-install-recommends --allow-downgrades "${missing[@]}" >/dev/null
fi
