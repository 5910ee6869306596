"""Firewall posture: cost of one full semantic check vs. a bare `nft list table` (root needed)."""

from __future__ import annotations

import os
import subprocess
import time

from bench.common import Skip, need, pick, row
from firmware.common.boards import load_board
from firmware.gateway.firewall import posture
from firmware.gateway.firewall.policy import policy_for_board
from firmware.gateway.firewall.ruleset import build

ROUNDS = pick(20, 2)


def _best(fn: object) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def run() -> list[dict]:
    """Apply and check in a scratch namespace; baseline: listing the table as text."""
    if os.geteuid() != 0:
        raise Skip("needs root (network namespaces and nftables)")
    need("nft", "ip")
    ns = "mamori-bench-fw-%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        rs = build(policy_for_board(load_board("rpi4")))
        apply_ms = _best(lambda: posture.apply(rs, ns))
        check_ms = _best(lambda: posture.check_ruleset(rs, ns))
        list_ms = _best(lambda: subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "list", "table", "inet", "mamori"],
            capture_output=True, check=True))
        listen_ms = _best(lambda: posture.check_listeners(rs, ns))
    finally:
        subprocess.run(["ip", "netns", "del", ns])
    base = "nft list table inet mamori (text), same namespace"
    return [
        row("firewall_check_ruleset", "ms", check_ms, base, list_ms, higher_is_better=False,
            rules=len(rs.rules), rounds=ROUNDS),
        row("firewall_apply_atomic", "ms", apply_ms, base, list_ms, higher_is_better=False,
            rounds=ROUNDS),
        row("firewall_check_listeners", "ms", listen_ms, base, list_ms, higher_is_better=False,
            rounds=ROUNDS),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
