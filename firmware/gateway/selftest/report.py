"""Self-test reports: JSON document, terminal table, self-contained HTML assessment record.

The HTML follows the shape of an ETSI TS 103 701 assessment record: the device under test, the
supplier's claims per requirement (ICS), then per-test evidence and verdicts.
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any

from firmware.common.version import software_version
from firmware.core import selftest as model
from firmware.gateway.selftest.htmlreport import (
    base_css,
    canonical,
    evidence_list,
    failure_details,
    page_foot,
    page_head,
    report_digest,
)
from firmware.gateway.selftest.requirements import CLAIMS

__all__ = ["SCHEMA", "STARS", "build_report", "canonical", "render_html", "render_table"]

SCHEMA = "mamori-selftest/1"
STARS = {2: "★★", 3: "★★★"}


def build_report(results: list[model.Result], level: int, state_dir: Path,
                 board: str | None, device: dict[str, Any] | None = None,
                 now: dt.datetime | None = None) -> dict[str, Any]:
    """The report as a JSON-ready document."""
    when = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    summary = model.summarise(results)
    reqs = sorted(summary["requirements"], key=model.sort_key)
    return {
        "schema": SCHEMA,
        "generated_at": when.isoformat(),
        "device": {
            "manufacturer": (device or {}).get("manufacturer", ""),
            "model": (device or {}).get("model", ""),
            "board": board or "",
            "software_version": software_version(),
            "state_dir": str(state_dir),
        },
        "service_level": level,
        "summary": summary,
        "claims": [{"requirement": r, "claim": CLAIMS.get(r, ""),
                    "level": model.requirement_level(r),
                    "verdict": summary["requirements"][r],
                    "checks": [x.check_id for x in results if r in x.requirements]}
                   for r in reqs],
        "results": [r.to_dict() for r in results],
    }


def render_table(report: dict[str, Any]) -> str:
    """A terminal table, one line per check, then the summary."""
    rows = [(r["id"], r["verdict"].upper().replace("_", " "), ",".join(r["requirements"]),
             r["title"]) for r in report["results"]]
    w_id = max([len("CHECK")] + [len(r[0]) for r in rows])
    w_req = min(max([len("REQUIREMENTS")] + [len(r[2]) for r in rows]), 28)
    lines = [f"Mamori self-test, service level {STARS[report['service_level']]}, "
             f"board {report['device']['board'] or '?'}", "",
             f"{'CHECK':<{w_id}}  {'VERDICT':<14}  {'REQUIREMENTS':<{w_req}}  TITLE"]
    for cid, verdict, reqs, title in rows:
        lines.append(f"{cid:<{w_id}}  {verdict:<14}  {reqs:<{w_req}}  {title}")
    for r in report["results"]:
        if r["verdict"] == model.FAIL:
            lines += failure_details(f"{r['id']}: {r['verdict']}", r["evidence"],
                                     r["remediation"] or None)
        elif r["verdict"] == model.INCONCLUSIVE:
            # Not a finding: say why it could not decide and how to make it decidable.
            lines += failure_details(f"{r['id']}: {r['verdict']}", r["evidence"], None)
            if r["reason"]:
                lines.append("  to decide: " + r["reason"])
    c = report["summary"]["counts"]
    lines += ["", f"{c['pass']} pass, {c['fail']} fail, {c['not_applicable']} not applicable, "
                  f"{c['inconclusive']} inconclusive: {report['summary']['verdict'].upper()}"]
    return "\n".join(lines)


_CSS = base_css("70em") + """\
.v{font-weight:bold;white-space:nowrap}.pass{color:#0a6b21}.fail{color:#b00020}
.not_applicable{color:#555}.inconclusive{color:#a05a00}
ul{margin:.2em 0;padding-left:1.2em}code{font-size:.9em}.meta td:first-child{width:14em}
"""


def _v(verdict: str) -> str:
    label = verdict.replace("_", " ").upper()
    return f'<span class="v {html.escape(verdict)}">{html.escape(label)}</span>'


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML assessment record (no external resources)."""
    e = html.escape
    d = report["device"]
    s = report["summary"]
    meta = [("Product", f"{d['manufacturer']} {d['model']}".strip() or "-"),
            ("Board", d["board"] or "-"), ("Software version", d["software_version"]),
            ("Service level", STARS[report["service_level"]]),
            ("Assessment date", report["generated_at"]),
            ("Overall verdict", None)]
    parts = page_head("Mamori self-test assessment record", _CSS) + [
        "<h1>Assessment record: Mamori gateway self-test</h1>",
        "<p>Structured after ETSI TS 103 701 (conformance assessment of EN 303 645): "
        "the device under test, the supplier's claims per requirement, and a verdict "
        "with evidence per test case.</p>",
        "<h2>1. Device under test</h2><table class='meta'>"]
    for k, v in meta:
        cell = _v(s["verdict"]) if v is None else e(v)
        parts.append(f"<tr><td>{e(k)}</td><td>{cell}</td></tr>")
    c = s["counts"]
    parts.append(f"<tr><td>Test cases</td><td>{c['pass']} pass, {c['fail']} fail, "
                 f"{c['not_applicable']} not applicable, {c['inconclusive']} inconclusive"
                 "</td></tr></table>")
    parts.append("<h2>2. Claims (implementation conformance statement)</h2><table>"
                 "<tr><th>Requirement</th><th>Claim</th><th>Level</th><th>Test cases</th>"
                 "<th>Verdict</th></tr>")
    for cl in report["claims"]:
        parts.append(f"<tr><td>{e(cl['requirement'])}</td><td>{e(cl['claim'])}</td>"
                     f"<td>{e(STARS.get(cl['level'], str(cl['level'])))}</td>"
                     f"<td>{e(', '.join(cl['checks']))}</td><td>{_v(cl['verdict'])}</td></tr>")
    parts.append("</table><h2>3. Test cases, evidence and verdicts</h2><table>"
                 "<tr><th>Test case</th><th>Requirements</th><th>Verdict</th>"
                 "<th>Evidence</th><th>Remediation / reason</th></tr>")
    for r in report["results"]:
        ev = evidence_list(r["evidence"])
        note = r["reason"] or r["remediation"]
        if r["verdict"] == model.INCONCLUSIVE and r["reason"]:
            note = "To decide: " + r["reason"]
        parts.append(f"<tr id='{e(r['id'])}'><td><code>{e(r['id'])}</code><br>{e(r['title'])}"
                     f"</td><td>{e(', '.join(r['requirements']))}</td><td>{_v(r['verdict'])}"
                     f"</td><td><ul>{ev}</ul></td><td>{e(note)}</td></tr>")
    parts.append("</table>" + page_foot(report_digest(report)))
    return "\n".join(parts)
