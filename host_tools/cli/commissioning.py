"""`mamori commissioning verify`: check a gateway's signed self-test report on the host."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

from firmware.common.cli import emit
from firmware.core import strictjson
from firmware.core.errors import IntegrityError, ProtocolError
from firmware.gateway.selftest.report import render_table
from firmware.gateway.selftest.signing import key_id, verify_report
from host_tools.commission.verify import RECORD_FORMAT, load_public, report_of_record


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


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = strictjson.loads(path.read_bytes(), "signed report")
    except OSError as exc:
        raise IntegrityError(f"cannot read signed report {path}: {exc.strerror or exc}")
    except ProtocolError as exc:
        raise IntegrityError(f"{path}: {exc.message}")
    if not isinstance(doc, dict):
        raise IntegrityError(f"{path}: signed report is malformed",
                             "give a selftest-*.json report or the record.json naming it")
    return doc


def _verify(args: argparse.Namespace) -> int:
    from firmware.gateway.selftest.report import canonical

    pub = load_public(args.key)
    envelope = _load(args.report)
    digest = None
    if envelope.get("format") == RECORD_FORMAT:  # the record: check the report it names
        path, digest = report_of_record(envelope, args.report)
        envelope = _load(path)
    report = verify_report(envelope, pub)
    if digest is not None and hashlib.sha256(canonical(report)).hexdigest() != digest:
        raise IntegrityError("the signed report is not the one the commissioning record %s "
                             "names" % args.report)
    if args.request_id is not None and report.get("request_id") != args.request_id:
        raise IntegrityError("report answers another request (replayed report)")
    verdict = report["summary"]["verdict"]
    emit({"valid": True, "keyid": key_id(pub), "verdict": verdict,
          "service_level": report.get("service_level"), "report": report}, args.json,
         render_table(report) + f"\n\nsignature valid (key {key_id(pub)[:16]})")
    return int(report["summary"]["exit_code"])
