"""Device information checks: disclosure policy (UK2/PSTI-2/R3-8), support period (PSTI-3)."""

from __future__ import annotations

from firmware.core.errors import ConfigError
from firmware.gateway.identity import deviceinfo
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check, failed, passed


@check("deviceinfo.disclosure", "Security contact and vulnerability disclosure URL published",
       requirements=["UK2", "PSTI-2", "R3-8"],
       remediation="write security_contact and an https disclosure_url into "
                   "STATE_DIR/deviceinfo.json (firmware.gateway.identity.deviceinfo.save)")
def disclosure(ctx: CheckContext) -> Outcome:
    """Device info names where to report vulnerabilities."""
    try:
        info = deviceinfo.load(ctx.live_state_dir)
    except ConfigError as exc:
        return failed(str(exc))
    return passed(f"security contact: {info['security_contact']}",
                  f"disclosure policy: {info['disclosure_url']}")


@check("deviceinfo.support-period", "Security-update support period published and not ended",
       requirements=["PSTI-3"],
       remediation="publish support_period_end (YYYY-MM-DD) in STATE_DIR/deviceinfo.json; "
                   "an ended period means the gateway gets no more security updates")
def support_period(ctx: CheckContext) -> Outcome:
    """PSTI-3: the minimum support period is in device info; warn when it nears its end."""
    try:
        info = deviceinfo.load(ctx.live_state_dir)
    except ConfigError as exc:
        return failed(str(exc))
    state, days = deviceinfo.support_status(info, ctx.today)
    end = info["support_period_end"]
    if state == "ended":
        return failed(f"support period ended on {end} ({-days} days ago)")
    if state == "ending":
        return passed(f"support period ends on {end}",
                      f"WARNING: only {days} days of security updates left")
    return passed(f"support period ends on {end} ({days} days left)")
