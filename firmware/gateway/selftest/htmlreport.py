"""Pieces shared by the self-test report and the release scan report (``host_tools/scan``).

Canonical JSON and its digest (what signatures and release metadata cover), the frame of a
self-contained HTML page (no external resources), evidence lists, terminal failure details.
"""

from __future__ import annotations

import hashlib
import html
import json
from typing import Any


def canonical(doc: dict[str, Any]) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces, UTF-8): what signatures and digests cover."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def report_digest(doc: dict[str, Any]) -> str:
    """SHA-256 (hex) of the document's canonical JSON."""
    return hashlib.sha256(canonical(doc)).hexdigest()


def base_css(max_width: str) -> str:
    """The page, heading and table rules both reports share; each appends its verdict colours."""
    return ("\nbody{font-family:system-ui,sans-serif;margin:2em;color:#1b1b1b;max-width:%s}\n"
            "h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}\n"
            "table{border-collapse:collapse;width:100%%}th,td{border:1px solid #ccc;"
            "padding:.35em .5em;\ntext-align:left;vertical-align:top}th{background:#f0f0f0}\n"
            % max_width)


def page_head(title: str, css: str) -> list[str]:
    """Opening lines of a self-contained HTML page up to ``<body>``; the title is plain text."""
    return ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>{html.escape(title)}</title>", f"<style>{css}</style></head><body>"]


def page_foot(digest: str) -> str:
    """The closing line: the report's canonical-JSON digest, then the end of the page."""
    return (f"<p><small>Report SHA-256 (canonical JSON): <code>{digest}</code></small></p>"
            "</body></html>")


def evidence_list(items: list[str]) -> str:
    """Escaped ``<li>`` items (a single '-' when there is no evidence)."""
    return "".join(f"<li>{html.escape(x)}</li>" for x in items) or "<li>-</li>"


def failure_details(head: str, evidence: list[str], fix: str | None) -> list[str]:
    """Terminal lines under a table for one failure: a blank line, the head, at most ten
    evidence lines and the fix (left out when ``fix`` is None)."""
    lines = ["", head] + ["  - " + e for e in evidence[:10]]
    if fix is not None:
        lines.append("  fix: " + fix)
    return lines
