#!/usr/bin/env bash
# Lets this machine run the board's arm64 binaries: binfmt_misc mounted, qemu-aarch64 enabled
# (qemu-user-static, binfmt-support). Used by `make test-board`; does nothing when not root.
set -euo pipefail
[ "$(id -u)" = 0 ] || exit 0
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
fi
if command -v update-binfmts >/dev/null 2>&1 && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi
