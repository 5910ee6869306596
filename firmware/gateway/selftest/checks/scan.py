"""Release scan attestation and local self-scan (SR3-H-9, R3-6).

The running release must carry the hash of its release scan report in its signed metadata
(``custom.mamori.scan_report_sha256``, verified as in the OTA check). The local self-scan must
equal the baseline: listeners ⊆ the declared ports (the firewall check's judgement), every
registered TLS context within the crypto policy (``tlspolicy.audit``), and the running image's
SBOM present, equal to the signed SBOM hash, with no component matching the local OSV advisory
file when one is installed (``STATE_DIR/scan/advisories.json``).
"""

from __future__ import annotations

import hashlib
import re

from firmware.common import tlspolicy
from firmware.core.errors import IntegrityError, MamoriError
from firmware.gateway.selftest.checks import firewall
from firmware.gateway.selftest.checks._common import installed_release, verdict
from firmware.gateway.selftest.checks.ota import release_record, verify_metadata
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check

ADVISORY_FILE = "scan/advisories.json"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@check("scan.attestation", "Running release carries a scan attestation; self-scan = baseline",
       requirements=["SR3-H-9", "R3-6"],
       remediation="publish releases only through `mamori release publish --scan-report` after "
                   "`mamori scan` passes; close undeclared listeners, fix TLS contexts, update "
                   "components named by the advisory match")
def attestation(ctx: CheckContext) -> Outcome:
    """Signed scan-report hash present; listeners, TLS contexts and SBOM equal the baseline."""
    inst = installed_release(ctx)
    if isinstance(inst, Outcome):
        return inst
    problems: list[str] = []
    evidence = [f"running release {inst.version}"]
    rel: dict = {}
    try:
        rel = release_record(verify_metadata(inst.paths.tuf, inst.board.name))
    except IntegrityError as exc:
        problems.append(str(exc))
    if rel and rel.get("version") != inst.version:
        problems.append(f"the signed metadata describes {rel.get('version')}, not the running "
                        f"{inst.version}: its attestation cannot be judged")
    elif rel:
        scan_hash = str(rel.get("scan_report_sha256") or "")
        if not HEX64.match(scan_hash):
            problems.append("the running release's signed metadata carries no scan report "
                            "hash (published without a passing scan)")
        else:
            evidence.append(f"signed scan report sha256 {scan_hash[:16]}…")
    lst = firewall.listeners_declared(ctx)
    if lst.verdict == "fail":
        problems += ["self-scan: " + e for e in lst.evidence]
    else:
        evidence.append("self-scan listeners: " + (lst.evidence[-1] if lst.evidence else
                                                   lst.verdict))
    for name, (side, factory) in sorted(tlspolicy.registered().items()):
        try:
            issues = tlspolicy.audit(factory(), side)
        except Exception as exc:  # noqa: BLE001 - a context that cannot be built is a finding
            issues = [f"cannot be built: {type(exc).__name__}"]
        problems += [f"TLS context {name}: {i}" for i in issues]
    evidence.append(f"{len(tlspolicy.registered())} TLS context(s) audited against the policy")
    sbom_path = inst.slot_dir / "sbom.cdx.json"
    if not sbom_path.is_file():
        problems.append("the running image has no SBOM (sbom.cdx.json)")
    else:
        digest = hashlib.sha256(sbom_path.read_bytes()).hexdigest()
        if rel and rel.get("sbom_sha256") and digest != rel["sbom_sha256"]:
            problems.append("the running image's SBOM differs from the signed one")
        adv = ctx.live_state_dir / ADVISORY_FILE
        if adv.is_file():
            from firmware.common import osv

            try:
                hits = osv.match(osv.load_sbom(sbom_path), osv.load_advisories(adv))
            except MamoriError as exc:
                problems.append(f"advisory check failed: {exc}")
            else:
                problems += ["known-vulnerable component {} {}: {}".format(
                    h["component"]["name"], h["component"]["version"], h["id"]) for h in hits]
                evidence.append(f"SBOM checked against {ADVISORY_FILE}: {len(hits)} match(es)")
        else:
            evidence.append(f"SBOM present (sha256 {digest[:16]}…); no local advisory file "
                            f"({ADVISORY_FILE})")
    return verdict(problems, evidence)
