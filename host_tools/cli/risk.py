"""`mamori risk score|register`: the smart-home guideline's risk scoring (R2-1 / R3-2)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from firmware.common.cli import emit
from firmware.common.fsutil import write_output
from firmware.core.errors import ConfigError
from host_tools.risk import cvss
from host_tools.risk.register import build_register, load_model, render_text, write_csv


def register(sub: Any) -> None:
    """Add the `risk` command group."""
    p = sub.add_parser("risk")
    rsub = p.add_subparsers(dest="risk_cmd", metavar="ACTION")
    rsub.required = True
    sp = rsub.add_parser("score", help="score one vector (CVSS v3.0 + LP/II, MLP/MII)")
    sp.add_argument("vector", metavar="VECTOR",
                    help="e.g. AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H/LP:Y/II:H")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=_score)
    rp = rsub.add_parser("register", help="turn a threat model (TOML or CSV) into a risk register")
    rp.add_argument("model", metavar="MODEL_FILE", type=Path)
    rp.add_argument("--json", action="store_true", help="machine-readable output")
    rp.add_argument("--out", type=Path, metavar="FILE",
                    help="also write the register to FILE (.json or .csv)")
    rp.set_defaults(func=_register)


def _score(args: argparse.Namespace) -> int:
    s = cvss.score(args.vector)
    text = "{}\nbase {:.1f} {}".format(s["vector"], s["base"], s["severity"])
    if "environmental" in s:
        text += "\nenvironmental {:.1f} {}".format(s["environmental"], s["environmental_severity"])
    emit(s, args.json, text)
    return 0


def _register(args: argparse.Namespace) -> int:
    reg = build_register(load_model(args.model))
    if args.out is not None:
        suffix = args.out.suffix.lower()
        if suffix == ".csv":
            write_csv(reg, args.out)
        elif suffix == ".json":
            write_output(args.out, json.dumps(reg, indent=2, ensure_ascii=False) + "\n")
        else:
            raise ConfigError(f"unknown output format {suffix!r}", str(args.out),
                              hint="use .json or .csv")
    emit(reg, args.json, render_text(reg))
    return 0
