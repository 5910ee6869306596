#!/usr/bin/env bash
# Installs the Debian packages of Mamori's real components (tests/components.py) when missing.
#   system-deps.sh [--best-effort] [COMPONENT...]     (no component: all of them)
# `make run` asks for mosquitto, `make test` and .ci/run for everything. With --best-effort a
# machine where we may not install (no root, no sudo, no apt-get) prints the one command to run
# and succeeds: the tests that need what is missing skip with the reason (under CI=true they fail).
set -euo pipefail
cd "$(dirname "$0")/.."
best_effort=0
if [ "${1:-}" = "--best-effort" ]; then best_effort=1; shift; fi
read -r -a missing <<<"$(python3 tests/components.py packages "$@")"
[ ${#missing[@]} -eq 0 ] && exit 0

give_up() {
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them with: apt-get install ${missing[*]}  (as root)$1" >&2
  [ "$best_effort" = 1 ] && exit 0
  exit 1
}
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else
    give_up "; until then the tests that need them are skipped"
  fi
fi
command -v apt-get >/dev/null 2>&1 || give_up " (no apt-get here: use your package manager)"
echo "installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
