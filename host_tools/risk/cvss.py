"""CVSS v3.0 arithmetic with the CCDS smart-home multipliers (see spec/risk-method.md).

Scores use the guideline's formulas exactly; RoundUp works on integers (1/100000 units) so that
floating-point artefacts (e.g. 4.000000001 -> 4.1) cannot change a published score.
"""

from __future__ import annotations

from typing import Any

from firmware.core.errors import ConfigError

BASE_ORDER = ("AV", "AC", "PR", "UI", "S", "C", "I", "A", "LP", "II")
TEMPORAL_ORDER = ("E", "RL", "RC")
ENV_ORDER = ("CR", "IR", "AR", "MAV", "MAC", "MPR", "MUI", "MS", "MC", "MI", "MA", "MLP", "MII")
REQUIRED = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")
# LP and II default to N so that plain CVSS v3.0 vectors score exactly as CVSS does.
DEFAULTS = {"LP": "N", "II": "N"}

_CIA = {"H": 0.56, "L": 0.22, "N": 0.0}
WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.20},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": _CIA, "I": _CIA, "A": _CIA,
    "LP": {"Y": 1.5, "N": 1.0},
    "II": {"H": 1.2, "N": 1.0},
    "E": {"X": 1.0, "H": 1.0, "F": 0.97, "P": 0.94, "U": 0.91},
    "RL": {"X": 1.0, "U": 1.0, "W": 0.97, "T": 0.96, "O": 0.95},
    "RC": {"X": 1.0, "C": 1.0, "R": 0.96, "U": 0.92},
    "CR": {"X": 1.0, "H": 1.5, "M": 1.0, "L": 0.5},
    "IR": {"X": 1.0, "H": 1.5, "M": 1.0, "L": 0.5},
    "AR": {"X": 1.0, "H": 1.5, "M": 1.0, "L": 0.5},
}
PR_WEIGHTS = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.50}}
SCOPES = ("U", "C")

NAMES = {
    "AV": "attack vector", "AC": "attack complexity", "PR": "privileges required",
    "UI": "user interaction", "S": "scope", "C": "confidentiality", "I": "integrity",
    "A": "availability", "LP": "life/property impact", "II": "important information",
    "E": "exploit code maturity", "RL": "remediation level", "RC": "report confidence",
    "CR": "confidentiality requirement", "IR": "integrity requirement",
    "AR": "availability requirement",
}


def _allowed(metric: str) -> tuple[str, ...]:
    """Values a metric accepts."""
    if metric == "S":
        return SCOPES
    if metric == "PR":
        return ("N", "L", "H")
    if metric.startswith("M") and metric[1:] in BASE_ORDER:
        return ("X",) + _allowed(metric[1:])
    return tuple(WEIGHTS[metric])


def _error(metric: str, message: str) -> ConfigError:
    return ConfigError(message, "vector", metric,
                       hint="expected e.g. AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H/LP:Y/II:H")


def parse(vector: str) -> dict[str, str]:
    """Parse a vector into {metric: value}; ConfigError names the first bad metric."""
    if not isinstance(vector, str) or not vector.strip():
        raise _error("", "is empty")
    parts = vector.strip().split("/")
    if parts[0].startswith("CVSS:"):
        if parts[0] != "CVSS:3.0":
            raise _error("CVSS", f"version {parts[0][5:]!r} is not supported "
                         "(this method is CVSS 3.0)")
        parts = parts[1:]
    known = BASE_ORDER + TEMPORAL_ORDER + ENV_ORDER
    metrics: dict[str, str] = {}
    for part in parts:
        name, sep, value = part.partition(":")
        if not sep or not name:
            raise _error(part or "/", f"malformed component {part!r} (expected METRIC:VALUE)")
        if name not in known:
            raise _error(name, f"unknown metric {name!r}")
        if name in metrics:
            raise _error(name, f"metric {name} appears twice")
        allowed = _allowed(name)
        if value not in allowed:
            raise _error(name, "value {!r} is not one of {}".format(value, ", ".join(allowed)))
        metrics[name] = value
    for name in REQUIRED:
        if name not in metrics:
            raise _error(name, f"required base metric {name} ({NAMES.get(name, name)}) is missing")
    for name, value in DEFAULTS.items():
        metrics.setdefault(name, value)
    return metrics


def round_up(value: float) -> float:
    """CVSS RoundUp: smallest one-decimal number >= value, computed on integers."""
    units = int(round(value * 100000))
    if units % 10000 == 0:
        return units / 100000.0
    return (units // 10000 + 1) / 10.0


def severity(score: float) -> str:
    """CVSS v3 qualitative severity band."""
    if score == 0:
        return "None"
    if score < 4.0:
        return "Low"
    if score < 7.0:
        return "Medium"
    if score < 9.0:
        return "High"
    return "Critical"


def _score(av: str, ac: str, pr: str, ui: str, scope: str, iss: float, lp: str, ii: str,
           ) -> tuple[float, float, float]:
    """(unrounded capped total, impact, exploitability) for one set of metric values."""
    impact = 6.42 * iss if scope == "U" else 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    impact = impact * WEIGHTS["LP"][lp] * WEIGHTS["II"][ii]
    exploit = (8.22 * WEIGHTS["AV"][av] * WEIGHTS["AC"][ac] * PR_WEIGHTS[scope][pr]
               * WEIGHTS["UI"][ui])
    if impact <= 0:
        return 0.0, impact, exploit
    total = impact + exploit if scope == "U" else 1.08 * (impact + exploit)
    return min(total, 10.0), impact, exploit


def base_score(m: dict[str, str]) -> dict[str, Any]:
    """Base value: the threat before countermeasures."""
    iss = 1 - (1 - _CIA[m["C"]]) * (1 - _CIA[m["I"]]) * (1 - _CIA[m["A"]])
    total, impact, exploit = _score(m["AV"], m["AC"], m["PR"], m["UI"], m["S"], iss,
                                    m["LP"], m["II"])
    score = round_up(total) if total > 0 else 0.0
    return {"score": score, "impact": round(impact, 4), "exploitability": round(exploit, 4)}


def has_environmental(m: dict[str, str]) -> bool:
    """True when the vector carries any temporal or environmental metric."""
    return any(k in m for k in TEMPORAL_ORDER + ENV_ORDER)


def environmental_score(m: dict[str, str]) -> dict[str, Any]:
    """Environmental value: the same threat after countermeasures (modified metrics)."""

    def mod(name: str) -> str:
        value = m.get("M" + name, "X")
        return m[name] if value == "X" else value

    cr, ir, ar = (WEIGHTS[k][m.get(k, "X")] for k in ("CR", "IR", "AR"))
    miss = min(1 - (1 - _CIA[mod("C")] * cr) * (1 - _CIA[mod("I")] * ir)
               * (1 - _CIA[mod("A")] * ar), 0.915)
    scope = mod("S")
    total, impact, exploit = _score(mod("AV"), mod("AC"), mod("PR"), mod("UI"), scope, miss,
                                    mod("LP"), mod("II"))
    temporal = 1.0
    for k in TEMPORAL_ORDER:
        temporal *= WEIGHTS[k][m.get(k, "X")]
    score = round_up(round_up(total) * temporal) if total > 0 else 0.0
    return {"score": score, "impact": round(impact, 4), "exploitability": round(exploit, 4)}


def normalise(m: dict[str, str]) -> str:
    """Canonical vector string (base, then temporal, then environmental metrics)."""
    order = BASE_ORDER + TEMPORAL_ORDER + ENV_ORDER
    return "CVSS:3.0/" + "/".join(k + ":" + m[k] for k in order if k in m)


def score(vector: str) -> dict[str, Any]:
    """Score a vector: base, environmental (when present), severities, sub-scores."""
    m = parse(vector)
    base = base_score(m)
    out: dict[str, Any] = {
        "vector": normalise(m),
        "base": base["score"],
        "severity": severity(base["score"]),
        "impact": base["impact"],
        "exploitability": base["exploitability"],
    }
    if has_environmental(m):
        env = environmental_score(m)
        out["environmental"] = env["score"]
        out["environmental_severity"] = severity(env["score"])
        out["modified_impact"] = env["impact"]
        out["modified_exploitability"] = env["exploitability"]
    return out
