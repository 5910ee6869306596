"""Threat model (TOML or CSV) -> risk register (base/environmental values, service level)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from firmware.common import stricttoml
from firmware.common.fsutil import write_output
from firmware.core.errors import ConfigError
from host_tools.risk import cvss

FIELDS = ("id", "component", "entry_point", "threat", "base", "modified", "countermeasures")
_ENV_ONLY = set(cvss.TEMPORAL_ORDER + cvss.ENV_ORDER)
LEVEL_NAMES = {1: "★", 2: "★★", 3: "★★★"}


def load_model(path: Path) -> dict[str, Any]:
    """Read a threat model from .toml or .csv into {service: {...}, threats: [...]}."""
    try:
        raw = Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read threat model: {exc}", str(path))
    suffix = Path(path).suffix.lower()
    if suffix == ".toml":
        data = stricttoml.loads(raw.encode(), str(path))
        threats = data.get("threat", [])
        service = data.get("service", {})
    elif suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(raw)))
        missing = [f for f in ("component", "entry_point", "threat", "base")
                   if rows and f not in rows[0]]
        if missing:
            raise ConfigError("missing CSV column(s): " + ", ".join(missing), str(path))
        threats = [dict(r) for r in rows]
        service = {}
    else:
        raise ConfigError(f"unknown threat-model format {suffix!r}", str(path),
                          hint="use a .toml or .csv file")
    if not isinstance(threats, list) or not threats:
        raise ConfigError("lists no threats", str(path), "threat")
    if not isinstance(service, dict):
        raise ConfigError("must be a table", str(path), "service")
    return {"service": service, "threats": [_threat(t, i, str(path))
                                            for i, t in enumerate(threats)]}


def _threat(t: Any, i: int, source: str) -> dict[str, Any]:
    prefix = f"threat[{i}]."
    if not isinstance(t, dict):
        raise ConfigError("must be a table", source, prefix[:-1])
    out: dict[str, Any] = {}
    for f in ("component", "entry_point", "threat", "base"):
        v = t.get(f)
        if not isinstance(v, str) or not v.strip():
            raise ConfigError("is missing or empty", source, prefix + f)
        out[f] = v.strip()
    out["id"] = str(t.get("id") or f"T{i + 1}")
    out["modified"] = str(t.get("modified") or "").strip()
    cm = t.get("countermeasures") or []
    if isinstance(cm, str):
        cm = [c.strip() for c in cm.split(";") if c.strip()]
    out["countermeasures"] = list(cm)
    try:
        cvss.parse(out["base"])
    except ConfigError as exc:
        raise ConfigError(exc.message, source, prefix + "base")
    for part in filter(None, out["modified"].split("/")):
        name = part.partition(":")[0]
        if name not in _ENV_ONLY:
            raise ConfigError(f"{name} is a base metric; use M{name} (or CR/IR/AR) for "
                              "countermeasures", source, prefix + "modified")
    if out["modified"]:
        try:
            cvss.parse(out["base"] + "/" + out["modified"])
        except ConfigError as exc:
            raise ConfigError(exc.message, source, prefix + "modified")
    return out


def propose_level(service: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The guideline's decision: personal information -> ★★ at least; life/property -> ★★★."""
    life = bool(service.get("life_property")) or any(r["lp"] == "Y" for r in rows)
    personal = bool(service.get("personal_data")) or any(r["ii"] == "H" for r in rows)
    if life:
        level, why = 3, "life or property can be affected (LP:Y or service.life_property)"
    elif personal:
        level, why = 2, "personal information is handled (II:H or service.personal_data)"
    else:
        level, why = 1, "no personal information and no life/property impact"
    return {"level": level, "stars": LEVEL_NAMES[level], "reason": why}


def build_register(model: dict[str, Any]) -> dict[str, Any]:
    """Score every threat before (base) and after (environmental) its countermeasures."""
    rows = []
    for t in model["threats"]:
        vector = t["base"] + ("/" + t["modified"] if t["modified"] else "")
        m = cvss.parse(vector)
        s = cvss.score(vector)
        after = s.get("environmental", s["base"])
        rows.append({
            "id": t["id"], "component": t["component"], "entry_point": t["entry_point"],
            "threat": t["threat"], "vector": s["vector"],
            "base": s["base"], "base_severity": s["severity"],
            "environmental": after, "environmental_severity": cvss.severity(after),
            "reduction": round(s["base"] - after, 1),
            "countermeasures": t["countermeasures"], "lp": m["LP"], "ii": m["II"],
        })
    before = _counts(r["base_severity"] for r in rows)
    after_counts = _counts(r["environmental_severity"] for r in rows)
    residual = [r["id"] for r in rows if r["environmental"] >= 7.0]
    return {
        "service": model["service"].get("name", ""),
        "threats": rows,
        "summary": {"before": before, "after": after_counts,
                    "max_before": max(r["base"] for r in rows),
                    "max_after": max(r["environmental"] for r in rows),
                    "residual_high": residual},
        "proposed_level": propose_level(model["service"], rows),
    }


def _counts(values: Any) -> dict[str, int]:
    out = {k: 0 for k in ("Critical", "High", "Medium", "Low", "None")}
    for v in values:
        out[v] += 1
    return out


def render_text(reg: dict[str, Any]) -> str:
    """The register as a terminal table."""
    title = "Risk register" + (": " + reg["service"] if reg["service"] else "")
    lines = [title, ""]
    head = f"{'ID':<5} {'COMPONENT':<16} {'ENTRY POINT':<18} {'THREAT':<34} {'BEFORE':<15} AFTER"
    lines += [head, "-" * len(head)]
    for r in reg["threats"]:
        lines.append(
            f"{r['id'][:5]:<5} {r['component'][:16]:<16} {r['entry_point'][:18]:<18} "
            f"{r['threat'][:34]:<34} {r['base']:4.1f} {r['base_severity']:<10} "
            f"{r['environmental']:4.1f} {r['environmental_severity']}")
    s = reg["summary"]
    fmt = ", ".join
    lines += ["",
              "before: " + fmt(f"{k} {n}" for k, n in s["before"].items() if n),
              "after:  " + fmt(f"{k} {n}" for k, n in s["after"].items() if n),
              "residual High/Critical after countermeasures: "
              + (fmt(s["residual_high"]) or "none"),
              "proposed service level: {} ({})".format(reg["proposed_level"]["stars"],
                                                  reg["proposed_level"]["reason"])]
    return "\n".join(lines)


def write_csv(reg: dict[str, Any], path: Path) -> None:
    """Write the register rows as CSV (for spreadsheets and assessors)."""
    cols = ("id", "component", "entry_point", "threat", "vector", "base", "base_severity",
            "environmental", "environmental_severity", "reduction", "countermeasures")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in reg["threats"]:
        w.writerow([("; ".join(r[c]) if c == "countermeasures" else r[c]) for c in cols])
    write_output(Path(path), buf.getvalue())
