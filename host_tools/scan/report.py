"""The release scan report: JSON document, its hash, a terminal table, self-contained HTML."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from firmware.gateway.selftest.htmlreport import (
    base_css,
    canonical,
    evidence_list,
    failure_details,
    page_foot,
    page_head,
    report_digest,
)
from host_tools.scan.findings import FAIL, INCONCLUSIVE, PASS, SKIPPED, VERDICTS

__all__ = ["EXIT_ERROR", "EXIT_FINDINGS", "EXIT_PASS", "SCHEMA", "build_report", "canonical",
           "passed", "render_html", "render_table", "report_hash", "summarise"]

SCHEMA = "mamori-scan/1"
EXIT_PASS, EXIT_ERROR, EXIT_FINDINGS = 0, 1, 2


def report_hash(report: dict[str, Any]) -> str:
    """SHA-256 (hex) of the report's canonical JSON: the release metadata records this."""
    return report_digest(report)


def summarise(findings: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per verdict, overall verdict and exit code (0 pass, 2 findings, 1 inconclusive:
    a check that could not be made is not a pass)."""
    counts = {v: sum(1 for f in findings if f["verdict"] == v) for v in VERDICTS}
    if counts[FAIL]:
        verdict, code = FAIL, EXIT_FINDINGS
    elif counts[INCONCLUSIVE]:
        verdict, code = INCONCLUSIVE, EXIT_ERROR
    else:
        verdict, code = PASS, EXIT_PASS
    return {"counts": counts, "verdict": verdict, "exit_code": code,
            "failed": [f["id"] for f in findings if f["verdict"] == FAIL],
            "inconclusive": [f["id"] for f in findings if f["verdict"] == INCONCLUSIVE]}


def build_report(board: str, findings: list[dict[str, Any]], staging: dict[str, Any],
                 tools: dict[str, str], now: dt.datetime | None = None) -> dict[str, Any]:
    """The report document."""
    when = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    return {"schema": SCHEMA, "generated_at": when.isoformat(), "board": board,
            "staging": staging, "tools": tools, "summary": summarise(findings),
            "findings": findings}


def passed(report: dict[str, Any]) -> bool:
    """Whether the scan found nothing (re-derived from the findings, not trusted as stored)."""
    findings = report.get("findings")
    if report.get("schema") != SCHEMA or not isinstance(findings, list) or not findings:
        return False
    return all(isinstance(f, dict) and f.get("verdict") in (PASS, SKIPPED) for f in findings)


def render_table(report: dict[str, Any]) -> str:
    """One line per finding, details of failures, then the summary."""
    rows = report["findings"]
    w = max([len("FINDING")] + [len(f["id"]) for f in rows])
    lines = [f"Mamori release scan, board {report['board']}, staging "
             f"{report['staging'].get('gateway', '')}", "",
             f"{'FINDING':<{w}}  {'VERDICT':<8}  TITLE"]
    lines += [f"{f['id']:<{w}}  {f['verdict'].upper():<8}  {f['title']}" for f in rows]
    for f in rows:
        if f["verdict"] == FAIL:
            lines += failure_details(f"{f['id']}: FAIL ({f['severity']})", f["evidence"],
                                     f["remediation"])
    for f in rows:
        if f["verdict"] == INCONCLUSIVE:
            lines += [f"{f['id']}: INCONCLUSIVE"] + [f"  {e}" for e in f["evidence"]]
    c = report["summary"]["counts"]
    lines += ["", f"{c[PASS]} pass, {c[FAIL]} fail, {c.get(INCONCLUSIVE, 0)} inconclusive, "
                  f"{c[SKIPPED]} skipped: "
                  f"{report['summary']['verdict'].upper()}  (report sha256 {report_hash(report)})"]
    return "\n".join(lines)


_CSS = base_css("72em") + """\
.v{font-weight:bold}.pass{color:#0a6b21}.fail{color:#b00020}.skipped{color:#555}
.inconclusive{color:#8a5a00}
ul{margin:.2em 0;padding-left:1.2em}code{font-size:.9em}
"""


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML report (no external resources)."""
    e = html.escape
    s = report["summary"]
    parts = page_head("Mamori release scan", _CSS) + [
        f"<h1>Release vulnerability scan and penetration test: {e(report['board'])}</h1>",
        "<table>"]
    meta = [("Generated", report["generated_at"]),
            ("Staging gateway", str(report["staging"].get("gateway", ""))),
            ("Tools", ", ".join(f"{k} {v}" for k, v in sorted(report["tools"].items()))),
            ("Findings", f"{s['counts'][PASS]} pass, {s['counts'][FAIL]} fail, "
                         f"{s['counts'].get(INCONCLUSIVE, 0)} inconclusive, "
                         f"{s['counts'][SKIPPED]} skipped")]
    for k, v in meta:
        parts.append(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>")
    parts.append(f"<tr><th>Verdict</th><td><span class='v {e(s['verdict'])}'>"
                 f"{e(s['verdict'].upper())}</span></td></tr></table>")
    for cat in sorted({f["category"] for f in report["findings"]}):
        parts.append(f"<h2>{e(cat)}</h2><table><tr><th>Finding</th><th>Verdict</th>"
                     "<th>Evidence</th><th>Remediation</th></tr>")
        for f in report["findings"]:
            if f["category"] != cat:
                continue
            ev = evidence_list(f["evidence"])
            sev = f" ({e(f['severity'])})" if f["verdict"] == FAIL else ""
            parts.append(f"<tr id='{e(f['id'])}'><td><code>{e(f['id'])}</code><br>"
                         f"{e(f['title'])}</td><td><span class='v {e(f['verdict'])}'>"
                         f"{e(f['verdict'].upper())}</span>{sev}</td><td><ul>{ev}</ul></td>"
                         f"<td>{e(f['remediation'])}</td></tr>")
        parts.append("</table>")
    parts.append(page_foot(report_hash(report)))
    return "\n".join(parts)
