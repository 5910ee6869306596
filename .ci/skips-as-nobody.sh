#!/usr/bin/env bash
# The suite as a user without root sees it: every test that cannot run here skips with its
# reason (listed at the end), none fails. Run as root: it makes a throw-away virtual
# environment on Debian's python3 (a pyenv interpreter under /root is not readable by others)
# and runs pytest as `nobody` with a scratch HOME. Extra arguments go to pytest
# (default: the whole suite but the board tests, on one worker per core).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (it switches to nobody itself)" >&2; exit 2; }
work=$(mktemp -d /tmp/mamori-nobody.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
/usr/bin/python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --upgrade pip
"$work/venv/bin/pip" install -q -e '.[dev]'
install -d -o nobody -g nogroup "$work/home"
[ $# -gt 0 ] || set -- -m "not board" -n "$(nproc)" --dist loadgroup
# -ra (pyproject.toml) lists every skip with its reason, and every failure.
rc=0
runuser -u nobody -- env -u CI HOME="$work/home" PYTHONDONTWRITEBYTECODE=1 \
    "$work/venv/bin/pytest" -q -p no:cacheprovider "$@" || rc=$?
exit "$rc"
