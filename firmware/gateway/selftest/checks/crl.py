"""Revocation list freshness: the installed CRL is the site's and not past its next update.

Requirements: SR2-H-2 (revoked credentials refused), SR3-H-7 (key management: revocation).

A stale CRL is not fatal in operation (devices on it stay refused, all others keep working,
``crl.stale`` alerts repeat hourly), but the installation is not in order until a fresh one is
installed: this check fails until then. An ageing list (past 80 % of its lifetime) passes with
a warning in the evidence: the platform's refresh is late.
"""

from __future__ import annotations

import time

from firmware.core.crlstate import AGING, STALE, crl_state
from firmware.core.errors import MamoriError
from firmware.gateway.identity.crl import Revocation
from firmware.gateway.identity.install import IDENTITY
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check, failed, passed


@check("keys.crl-fresh", "The installed CRL is the site's and within its validity",
       requirements=["SR2-H-2", "SR3-H-7"],
       remediation="install a fresh CRL: `mamori platform revocations --broker URL --site DIR "
                   "--resign` (or offline `mamori-gateway crl install --state-dir DIR FILE`), "
                   "and run the platform's refresh well inside the CRL's lifetime")
def crl_fresh(ctx: CheckContext) -> Outcome:
    """The CRL verifies against the site CA; fresh or ageing passes, stale fails."""
    if not (ctx.live_state_dir / IDENTITY / "gateway.json").is_file():
        return failed("no installed identity (identity/gateway.json): no site CRL to check")
    try:
        info = Revocation(ctx.live_state_dir).info()
    except (MamoriError, OSError, ValueError) as exc:
        return failed(f"installed CRL unusable: {exc}")
    now = time.time()
    state = crl_state(info.this_update.timestamp(), info.next_update.timestamp(), now)
    where = (f"CRL {info.number} ({len(info.serials)} revoked serial(s)), signed "
             f"{info.this_update.isoformat()}, next update {info.next_update.isoformat()}")
    if state == STALE:
        return failed(f"{where}: stale for {int(now - info.next_update.timestamp())} s; "
                      "devices on it stay refused, but revocations since then are unknown")
    if state == AGING:
        return passed(f"{where}: ageing (past 80 % of its lifetime; the refresh is late)")
    return passed(f"{where}: fresh, verifies against the site CA")
