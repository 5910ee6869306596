"""The release gate: a release may be published only with a passing scan, or a recorded reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware.core import strictjson
from firmware.core.errors import ConfigError, PolicyError, ProtocolError
from host_tools.scan.report import SCHEMA, passed, report_hash


def check_scan(report_path: Path | None, override: str | None) -> dict[str, Any]:
    """What the release metadata records about its scan; PolicyError if publishing is refused.

    Returns ``{"scan_report_sha256", "scan_verdict", "scan_override"}``. A failed, missing or
    unreadable report refuses the release unless ``override`` gives a reason (then recorded).
    """
    reason = (override or "").strip()
    if override is not None and len(reason) < 10:
        raise ConfigError("--override-scan needs a real reason (at least 10 characters)")
    if report_path is None:
        if not reason:
            raise PolicyError("no scan report for this release",
                              "run `mamori scan --board B --out scan.json` and pass "
                              "--scan-report scan.json, or --override-scan REASON")
        return {"scan_report_sha256": None, "scan_verdict": "missing", "scan_override": reason}
    try:
        report = strictjson.loads(Path(report_path).read_bytes(), "scan report")
    except OSError as exc:
        raise ConfigError(f"cannot read scan report {report_path}: {exc.strerror or exc}")
    except ProtocolError as exc:
        raise ConfigError(exc.message, str(report_path))
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise ConfigError(f"{report_path} is not a `mamori scan` report ({SCHEMA})")
    ok = passed(report)
    bad = [f for f in report.get("findings", []) if isinstance(f, dict)
           and f.get("verdict") in ("fail", "inconclusive")]
    verdict = "pass" if ok else ("fail" if any(f.get("verdict") == "fail" for f in bad)
                                 or not bad else "inconclusive")
    if not ok and not reason:
        what = "failed" if verdict == "fail" else "was inconclusive"
        raise PolicyError(f"the release scan {what}: "
                          + ", ".join(str(f.get("id")) for f in bad[:10]),
                          "fix the findings and rescan, or --override-scan REASON (recorded)")
    return {"scan_report_sha256": report_hash(report), "scan_verdict": verdict,
            "scan_override": reason if not ok else ""}
