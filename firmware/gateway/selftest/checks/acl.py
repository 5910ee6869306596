"""Access control at service start: default-deny ACL and a site-signed allowlist (R2-3, R2-2).

The installed ACL (``identity/acl.json``, loaded exactly as the WAN service loads it) is probed
with a principal nothing grants and with actions no rule names; ★★★ actions may not be granted
on every device. The installed model allowlist must verify against the site CA (the LAN, BLE
and Zigbee admission paths refuse devices outside it).
"""

from __future__ import annotations

import secrets

from firmware.core.acl import ANY, DeviceAcl
from firmware.core.errors import MamoriError
from firmware.gateway.identity import policies
from firmware.gateway.identity.admission import DeviceAuthorizer
from firmware.gateway.identity.install import installed_identity
from firmware.gateway.selftest.checks._common import verdict
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check, failed
from firmware.gateway.wan.from_install import installed_acl

# Life-and-property actions: never granted on every device at once.
STAR3_ACTIONS = ("unlock", "disarm")


def acl_problems(acl: DeviceAcl) -> tuple[list[str], list[str]]:
    """(problems, evidence) of an ACL: default deny probed, no wildcard ★★★ grants."""
    problems: list[str] = []
    rules = acl.to_rules()
    devices = sorted({r["device"] for r in rules if r["device"] != ANY}) or ["selftest-device"]
    nobody = "selftest-nobody-" + secrets.token_hex(3)
    probe_action = "selftest-probe-" + secrets.token_hex(3)
    for dev in devices + [ANY]:
        for action in ("unlock", "disarm", "status", probe_action):
            if acl.allows(nobody, dev, action):
                problems.append(f"an ungranted principal may '{action}' device '{dev}'")
    for r in rules:
        if acl.allows(r["principal"], r["device"], probe_action):
            problems.append(f"principal '{r['principal']}' is granted every action ('*') on "
                            f"device '{r['device']}'")
        if r["device"] == ANY:
            wild = sorted(a for a in r["actions"] if a in STAR3_ACTIONS or a == ANY)
            if wild:
                problems.append(f"principal '{r['principal']}' may {'/'.join(wild)} every "
                                "device ('*'): ★★★ actions need a per-device grant")
    evidence = [f"{len(rules)} rule(s) for {len({r['principal'] for r in rules})} "
                f"principal(s); probes with an ungranted principal and an unnamed action "
                f"refused on {len(devices) + 1} target(s)"]
    return problems, evidence


@check("acl.default-deny", "Installed ACL denies by default; allowlist signed by the site CA",
       requirements=["R2-3", "R2-2"],
       remediation="re-issue the installation bundle with per-device grants only (no '*' for "
                   "unlock/disarm, no '*' actions) and a site-signed model allowlist; import "
                   "it with `mamori-gateway run --bundle FILE`; fix or remove a policy file the "
                   "evidence names")
def default_deny(ctx: CheckContext) -> Outcome:
    """Probe the installed ACL and verify the installed allowlist."""
    try:
        meta = installed_identity(ctx.live_state_dir)
    except MamoriError as exc:
        return failed(f"no credentials or ACL were initialised: {exc}")
    try:
        acl = installed_acl(ctx.live_state_dir)
    except (MamoriError, ValueError) as exc:
        return failed(f"identity/acl.json cannot be loaded: {exc}")
    problems, evidence = acl_problems(acl)
    try:
        auth = DeviceAuthorizer(ctx.live_state_dir)
    except (MamoriError, ValueError, KeyError) as exc:
        problems.append(f"the installed model allowlist does not verify: {exc}")
    else:
        evidence.append(f"allowlist: {len(auth.allowlist)} model(s) for level {auth.level}, "
                        f"signature verified against the site CA of {meta.get('site_id')}")
        try:
            auth.check_model("selftest-maker-" + secrets.token_hex(3), "unlisted", "ip")
            problems.append("a model outside the allowlist was accepted")
        except MamoriError:
            evidence.append("a model outside the allowlist is refused")
    policy_problems = [str(p) for p in policies.check_all(ctx.live_state_dir)]
    problems += policy_problems
    if not policy_problems:
        evidence.append("admission policies valid: %s" % ", ".join(
            f"{n} ({'present' if policies.path(ctx.live_state_dir, n).is_file() else 'default'})"
            for n in sorted(policies.SCHEMAS)))
    return verdict(problems, evidence)
