"""`mamori commissioning verify`: check a gateway's signed self-test report on the host."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from firmware.common.cli import emit
from firmware.core import strictjson
from firmware.core.errors import IntegrityError, ProtocolError
from firmware.gateway.selftest.report import render_table
from firmware.gateway.selftest.signing import key_id, verify_report
from host_tools.commission.verify import load_public


def register(sub: Any) -> None:
    """Add the `commissioning` command group."""
    p = sub.add_parser("commissioning")
    cs = p.add_subparsers(dest="commissioning_cmd", metavar="ACTION")
    cs.required = True
    vp = cs.add_parser("verify", help="verify a signed self-test report (exit 0 valid and "
                                      "passing, 2 valid but failing, 1 invalid)")
    vp.add_argument("report", type=Path, metavar="SIGNED_REPORT")
    vp.add_argument("--key", type=Path, required=True, metavar="PUB_PEM",
                    help="the gateway's report-signing public key (report-signing.pub.pem)")
    vp.add_argument("--request-id", help="also require this platform request ID in the report")
    vp.add_argument("--json", action="store_true")
    vp.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    pub = load_public(args.key)
    try:
        envelope = strictjson.loads(args.report.read_bytes(), "signed report")
    except OSError as exc:
        raise IntegrityError(f"cannot read signed report: {exc.strerror or exc}")
    except ProtocolError as exc:
        raise IntegrityError(exc.message)
    if not isinstance(envelope, dict):
        raise IntegrityError("signed report is malformed")
    report = verify_report(envelope, pub)
    if args.request_id is not None and report.get("request_id") != args.request_id:
        raise IntegrityError("report answers another request (replayed report)")
    verdict = report["summary"]["verdict"]
    emit({"valid": True, "keyid": key_id(pub), "verdict": verdict,
          "service_level": report.get("service_level"), "report": report}, args.json,
         render_table(report) + f"\n\nsignature valid (key {key_id(pub)[:16]})")
    return int(report["summary"]["exit_code"])
