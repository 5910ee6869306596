#!/usr/bin/env bash
# Installs the system packages Mamori's demo and tests use, when missing and when we may.
# Used by `make run` (mosquitto only) and by .ci/run (everything).
set -euo pipefail
want=("$@")
[ ${#want[@]} -gt 0 ] || want=(mosquitto)

declare -A probe=(
  [mosquitto]="test -x /usr/sbin/mosquitto || command -v mosquitto"
  [mosquitto-clients]="command -v mosquitto_pub"
  [nftables]="command -v nft"
  [socat]="command -v socat"
  [iproute2]="command -v ip"
  [openssl]="command -v openssl"
  [nodejs]="command -v node"
  [npm]="command -v npm"
  [chromium]="command -v chromium"
  [nmap]="command -v nmap"
  [sslscan]="command -v sslscan"
  [faketime]="command -v faketime"
  [dosfstools]="command -v mkfs.vfat"
  [mtools]="command -v mcopy"
  [e2fsprogs]="command -v mkfs.ext4"
  [util-linux]="command -v losetup"
)
missing=()
for pkg in "${want[@]}"; do
  check=${probe[$pkg]:-"dpkg -s $pkg"}
  bash -c "$check" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "missing system packages: ${missing[*]}" >&2
    echo "install them with: apt-get install ${missing[*]}  (as root)" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages: ${missing[*]} (no apt-get here: install them with your package manager)" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
