"""Requirement traceability: each requirement ID to its code, its tests and its self-test checks.

The matrix lives in ``tests/traceability/requirements.toml`` (a copy of the catalog's ID list
plus one ``[[requirement]]`` table per ID). :func:`validate` proves every reference is real
without importing feature code or running tests:

- a code reference ``path`` or ``path::Symbol`` / ``path::Class.method`` names an existing file
  and, for Python files, a symbol defined in it (read with :mod:`ast`);
- a test reference is a pytest node ID (``tests/x/test_y.py::test_z``, ``::TestC::test_m``; a
  parameter part ``[...]`` may be left off) of a test function pytest would collect;
- a check reference exists in the live self-test registry and lists the requirement ID, and
  every registry check that lists the ID is named (so a new check cannot go unrecorded);
- a requirement has code and a test (and a check where the catalog asks for one), unless the
  missing part is declared as a gap with a reason (``status = "gap"``, ``gaps = [...]``); a
  declared gap that is no longer missing is a problem too, so the gap list cannot rot.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path
from typing import Any

from firmware.common import stricttoml
from firmware.core.errors import ConfigError

SCHEMA = "mamori-trace/1"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = ROOT / "tests" / "traceability" / "requirements.toml"
FACETS = ("code", "tests", "checks")
STATUSES = ("implemented", "gap")
LEVEL_MARKS = {1: "★", 2: "★★", 3: "★★★"}
_TEST_FILES = ("test_*.py", "*_test.py")  # pytest's default python_files


class Entry:
    """One requirement's row of the matrix, as written in the TOML."""

    def __init__(self, d: dict[str, Any], source: str) -> None:
        rid = d.get("id")
        if not isinstance(rid, str) or not rid:
            raise ConfigError("a [[requirement]] has no id", source)
        where = "%s [%s]" % (source, rid)
        self.id = rid
        level = d.get("level")
        if not isinstance(level, int) or isinstance(level, bool) or level not in LEVEL_MARKS:
            raise ConfigError("level must be 1, 2 or 3, got %r" % (level,), where)
        self.level: int = level
        self.title = _text(d, "title", where, required=True)
        self.code = _strings(d, "code", where)
        self.tests = _strings(d, "tests", where)
        self.checks = _strings(d, "checks", where)
        self.covered_by = _strings(d, "covered_by", where)
        self.selftest_required = d.get("selftest_required", False)
        if not isinstance(self.selftest_required, bool):
            raise ConfigError("selftest_required must be true or false", where)
        self.status = d.get("status", "implemented")
        if self.status not in STATUSES:
            raise ConfigError("status must be one of %s" % ", ".join(STATUSES), where)
        self.gaps = _strings(d, "gaps", where)
        for g in self.gaps:
            if g not in FACETS:
                raise ConfigError("unknown gap %r (use %s)" % (g, ", ".join(FACETS)), where)
        self.reason = _text(d, "reason", where)
        self.note = _text(d, "note", where)
        known = {"id", "level", "title", "code", "tests", "checks", "covered_by",
                 "selftest_required", "status", "gaps", "reason", "note"}
        extra = sorted(set(d) - known)
        if extra:
            raise ConfigError("unknown key(s) %s" % ", ".join(extra), where)


def _text(d: dict[str, Any], key: str, where: str, required: bool = False) -> str:
    v = d.get(key, "")
    if not isinstance(v, str) or (required and not v.strip()):
        raise ConfigError("%s must be a non-empty string" % key if required
                          else "%s must be a string" % key, where)
    return v


def _strings(d: dict[str, Any], key: str, where: str) -> list[str]:
    v = d.get(key, [])
    if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
        raise ConfigError("%s must be a list of non-empty strings" % key, where)
    if len(set(v)) != len(v):
        raise ConfigError("%s lists an item twice" % key, where)
    return list(v)


class Matrix:
    """The whole traceability file: the catalog's ID list and one entry per ID."""

    def __init__(self, catalog: list[str], entries: list[Entry], source: str) -> None:
        self.catalog = catalog
        self.entries = {e.id: e for e in entries}
        self.order = [e.id for e in entries]
        self.source = source


def parse_matrix(data: dict[str, Any], source: str = "<matrix>") -> Matrix:
    """Build a Matrix from the decoded TOML, refusing malformed tables with their place."""
    if data.get("schema") != SCHEMA:
        raise ConfigError("schema must be %r" % SCHEMA, source)
    catalog = data.get("catalog")
    if not isinstance(catalog, list) or not catalog or not all(
            isinstance(c, str) and c for c in catalog):
        raise ConfigError("catalog must be a non-empty list of requirement IDs", source)
    rows = data.get("requirement")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError("needs [[requirement]] tables", source)
    entries = [Entry(r, source) for r in rows]
    return Matrix(list(catalog), entries, source)


def load_matrix(path: Path = DEFAULT_FILE) -> Matrix:
    """Read and parse the traceability TOML."""
    if not Path(path).is_file():
        raise ConfigError("no traceability matrix at %s" % path,
                          hint="run from a source checkout or pass --file")
    data = stricttoml.load_file(path, 4 * 1024 * 1024)
    return parse_matrix(data, str(path))


class _Symbols:
    """Names defined in Python files and test IDs pytest would collect, read once per file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._trees: dict[str, ast.Module | None] = {}

    def tree(self, rel: str) -> ast.Module | None:
        if rel not in self._trees:
            try:
                self._trees[rel] = ast.parse((self.root / rel).read_text(encoding="utf-8"))
            except (OSError, SyntaxError, ValueError):
                self._trees[rel] = None
        return self._trees[rel]


def _safe_rel(rel: str) -> bool:
    p = Path(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts


def _body_names(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    names: dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    names[t.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def code_problem(ref: str, symbols: _Symbols) -> str | None:
    """Why a code reference (``path`` or ``path::Symbol[.attr]``) is not real, or None."""
    rel, _, symbol = ref.partition("::")
    if not _safe_rel(rel):
        return "code path %r must be relative to the repository" % rel
    if not (symbols.root / rel).is_file():
        return "code path %s does not exist" % rel
    if not symbol:
        return None
    if not rel.endswith(".py"):
        return "symbol %s given for a non-Python file %s" % (symbol, rel)
    tree = symbols.tree(rel)
    if tree is None:
        return "cannot parse %s" % rel
    body: list[ast.stmt] = tree.body
    for part in symbol.split("."):
        node = _body_names(body).get(part)
        if node is None:
            return "symbol %s not defined in %s" % (symbol, rel)
        body = node.body if isinstance(node, ast.ClassDef) else []
    return None


def test_problem(nodeid: str, symbols: _Symbols) -> str | None:
    """Why a pytest node ID names no collectable test, or None."""
    rel, _, rest = nodeid.partition("::")
    if not _safe_rel(rel) or not rest:
        return "test %r is not a node ID (tests/area/test_x.py::test_name)" % nodeid
    if not rel.startswith("tests/"):
        return "test %s is outside tests/" % nodeid
    if not (symbols.root / rel).is_file():
        return "test file %s does not exist" % rel
    if not any(fnmatch.fnmatch(Path(rel).name, pat) for pat in _TEST_FILES):
        return "pytest does not collect %s (file name)" % rel
    tree = symbols.tree(rel)
    if tree is None:
        return "cannot parse %s" % rel
    parts = rest.split("::")
    parts[-1] = parts[-1].split("[", 1)[0]
    body: list[ast.stmt] = tree.body
    for i, part in enumerate(parts):
        node = _body_names(body).get(part)
        last = i == len(parts) - 1
        if last and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) \
                and part.startswith("test"):
            return None
        if not last and isinstance(node, ast.ClassDef) and part.startswith("Test"):
            body = node.body
            continue
        break
    return "test %s is not collected (no such test function)" % nodeid


class Problem:
    """One traceability defect: which requirement, and what is wrong."""

    def __init__(self, req_id: str, message: str) -> None:
        self.req_id = req_id
        self.message = message

    def __str__(self) -> str:
        return "%s: %s" % (self.req_id, self.message)


def registry_map(registry: dict[str, Any]) -> dict[str, list[str]]:
    """Check ID -> requirement IDs it lists, from a registry of Check objects (or such lists)."""
    out: dict[str, list[str]] = {}
    for cid, chk in registry.items():
        out[cid] = list(chk if isinstance(chk, list) else chk.requirements)
    return out


def effective_checks(entry: Entry, matrix: Matrix) -> list[str]:
    """Checks evidencing a requirement: its own, else those of the IDs it is covered by."""
    if entry.checks:
        return list(entry.checks)
    seen: list[str] = []
    for rid in entry.covered_by:
        sub = matrix.entries.get(rid)
        if sub is not None and sub is not entry:
            for c in sub.checks:
                if c not in seen:
                    seen.append(c)
    return seen


def _effective(entry: Entry, matrix: Matrix, facet: str) -> list[str]:
    if facet == "checks":
        return effective_checks(entry, matrix)
    own: list[str] = getattr(entry, facet)
    if own:
        return own
    out: list[str] = []
    for rid in entry.covered_by:
        sub = matrix.entries.get(rid)
        if sub is not None and sub is not entry:
            out.extend(x for x in getattr(sub, facet) if x not in out)
    return out


def missing_facets(entry: Entry, matrix: Matrix) -> list[str]:
    """Facets the requirement lacks: code, tests, and checks where a check is required."""
    missing = [f for f in ("code", "tests") if not _effective(entry, matrix, f)]
    if entry.selftest_required and not effective_checks(entry, matrix):
        missing.append("checks")
    return missing


def validate(matrix: Matrix, registry: dict[str, Any], root: Path = ROOT,
             known_levels: dict[str, int] | None = None) -> list[Problem]:
    """Every traceability defect of the matrix against the tree and the self-test registry."""
    problems: list[Problem] = []
    checks = registry_map(registry)
    symbols = _Symbols(root)
    if len(set(matrix.catalog)) != len(matrix.catalog):
        problems.append(Problem("catalog", "lists an ID twice"))
    if len(matrix.order) != len(matrix.entries):
        dup = sorted({r for r in matrix.order if matrix.order.count(r) > 1})
        problems.append(Problem(",".join(dup), "more than one [[requirement]] entry"))
    for rid in matrix.catalog:
        if rid not in matrix.entries:
            problems.append(Problem(rid, "in the catalog but has no [[requirement]] entry"))
    for rid, e in matrix.entries.items():
        if rid not in matrix.catalog:
            problems.append(Problem(rid, "entry for an ID that is not in the catalog"))
        if known_levels and rid in known_levels and known_levels[rid] != e.level:
            problems.append(Problem(rid, "level %d but the self-test model says %d"
                                    % (e.level, known_levels[rid])))
        for ref in e.code:
            msg = code_problem(ref, symbols)
            if msg:
                problems.append(Problem(rid, msg))
        for nodeid in e.tests:
            msg = test_problem(nodeid, symbols)
            if msg:
                problems.append(Problem(rid, msg))
        for cid in e.checks:
            if cid not in checks:
                problems.append(Problem(rid, "self-test check %s is not registered" % cid))
            elif rid not in checks[cid]:
                problems.append(Problem(rid, "self-test check %s does not list %s (it lists %s)"
                                        % (cid, rid, ", ".join(checks[cid]))))
        for cid in sorted(checks):
            if rid in checks[cid] and cid not in e.checks:
                problems.append(Problem(rid, "self-test check %s lists %s but the matrix does "
                                        "not name it" % (cid, rid)))
        for sub in e.covered_by:
            if sub == rid or sub not in matrix.entries:
                problems.append(Problem(rid, "covered_by names %s, which has no entry" % sub))
        problems.extend(_gap_problems(e, matrix))
    return problems


def _gap_problems(e: Entry, matrix: Matrix) -> list[Problem]:
    out: list[Problem] = []
    missing = missing_facets(e, matrix)
    for f in missing:
        if f not in e.gaps:
            what = {"code": "no code", "tests": "no test",
                    "checks": "no self-test check although the catalog asks for one"}[f]
            out.append(Problem(e.id, what + " (add it, or declare gaps = [\"%s\"] with a reason)"
                               % f))
    for f in e.gaps:
        if f not in missing:
            out.append(Problem(e.id, "declared gap %r is no longer missing: remove it" % f))
    if e.gaps and e.status != "gap":
        out.append(Problem(e.id, "declares gaps but status is not \"gap\""))
    if e.status == "gap" and not e.gaps:
        out.append(Problem(e.id, "status \"gap\" but no gaps listed"))
    if e.gaps and not e.reason.strip():
        out.append(Problem(e.id, "a gap needs a reason"))
    return out


def rows(matrix: Matrix, registry: dict[str, Any], problems: list[Problem]) -> list[dict[str, Any]]:
    """The matrix as JSON-ready rows (ID, level, code, tests, checks, status) in catalog order."""
    checks = registry_map(registry)
    by_id: dict[str, list[str]] = {}
    for p in problems:
        by_id.setdefault(p.req_id, []).append(p.message)
    out = []
    for rid in matrix.order:
        e = matrix.entries[rid]
        own_problems = by_id.get(rid, [])
        status = "broken" if own_problems else e.status
        out.append({
            "id": rid, "level": e.level, "level_mark": LEVEL_MARKS[e.level], "title": e.title,
            "code": e.code, "tests": e.tests, "checks": e.checks,
            "derived_checks": [c for c in effective_checks(e, matrix) if c not in e.checks],
            "check_registered": {c: c in checks for c in effective_checks(e, matrix)},
            "derived_counts": {f: len(_effective(e, matrix, f)) for f in ("code", "tests")},
            "covered_by": e.covered_by, "selftest_required": e.selftest_required,
            "status": status, "gaps": e.gaps, "reason": e.reason, "note": e.note,
            "problems": own_problems,
        })
    return out


def gaps(matrix: Matrix) -> list[Entry]:
    """Entries declared as gaps (the explicit allowlist)."""
    return [matrix.entries[r] for r in matrix.order if matrix.entries[r].status == "gap"]


def _items(lines: list[str], label: str, items: list[str], derived: int = 0) -> None:
    if not items and derived:
        lines.append("    %s %d via covered_by" % (label, derived))
        return
    if len(items) <= 1:
        lines.append("    %s %s" % (label, items[0] if items else "-"))
        return
    lines.append("    " + label)
    lines.extend("        " + i for i in items)


def render_text(table: list[dict[str, Any]], general: list[str]) -> str:
    """A readable matrix: one block per requirement, then a summary line."""
    lines: list[str] = []
    for r in table:
        lines.append("%-9s %-4s %-11s %s" % (r["id"], r["level_mark"], r["status"], r["title"]))
        if r["covered_by"]:
            lines.append("    covered by " + ", ".join(r["covered_by"]))
        _items(lines, "code:", r["code"], r["derived_counts"]["code"])
        _items(lines, "tests:", r["tests"], r["derived_counts"]["tests"])
        ch = r["checks"] + ["%s (via covered_by)" % c for c in r["derived_checks"]]
        _items(lines, "checks:" if not r["selftest_required"] else "checks (required):", ch)
        if r["gaps"]:
            lines.append("    GAP (%s): %s" % (", ".join(r["gaps"]), r["reason"]))
        if r["note"]:
            lines.append("    note:   " + r["note"])
        for p in r["problems"]:
            lines.append("    PROBLEM: " + p)
    for p in general:
        lines.append("PROBLEM: " + p)
    counts = {s: sum(1 for r in table if r["status"] == s)
              for s in ("implemented", "gap", "broken")}
    lines.append("%d requirements: %d implemented, %d gap, %d broken"
                 % (len(table), counts["implemented"], counts["gap"], counts["broken"]))
    return "\n".join(lines)
