"""Firewall posture: cost of one full semantic check vs. a bare `nft list table` (root needed)."""

from __future__ import annotations

import os
import subprocess
import time

from firmware.common.boards import load_board
from firmware.gateway.firewall import posture
from firmware.gateway.firewall.policy import policy_for_board
from firmware.gateway.firewall.ruleset import build

ROUNDS = 20


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
        return []
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
    return [
        {"name": "firewall_check_ruleset", "unit": "ms", "value": round(check_ms, 2),
         "baseline_name": "nft_list_table_text", "baseline": round(list_ms, 2),
         "ratio": round(check_ms / list_ms, 2), "rules": len(rs.rules)},
        {"name": "firewall_apply_atomic", "unit": "ms", "value": round(apply_ms, 2),
         "baseline_name": "nft_list_table_text", "baseline": round(list_ms, 2),
         "ratio": round(apply_ms / list_ms, 2)},
        {"name": "firewall_check_listeners", "unit": "ms", "value": round(listen_ms, 2),
         "baseline_name": "nft_list_table_text", "baseline": round(list_ms, 2),
         "ratio": round(listen_ms / list_ms, 2)},
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
