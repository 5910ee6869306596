"""Commissioning: run the self-test at the installation's level, sign it, keep it with the record.

The report is signed with a dedicated Ed25519 report-signing key kept in the gateway's key
store (wrapped under the device KEK; created on first use, listed in the key inventory). Its
public key is published next to the reports so the installer's host can verify them
(``mamori commissioning verify``). Files under ``STATE_DIR/installation/commissioning/``:

    selftest-<UTC timestamp>.json   signed report envelope {report, signature}
    record.json                     index: gateway, site, level, every report's hash and verdict
    report-signing.pub.pem          the report-signing public key
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from firmware.common.boardprofile import Board
from firmware.common.fsutil import atomic_write
from firmware.core import selftest as model
from firmware.core.errors import ConfigError, MamoriError, StateError
from firmware.gateway.identity import deviceinfo
from firmware.gateway.identity.keystore import KeyStore
from firmware.gateway.selftest.report import build_report, canonical
from firmware.gateway.selftest.runner import resolve_board, resolve_level, run_checks
from firmware.gateway.selftest.signing import key_id, sign_report

DIR = "installation/commissioning"
PUBLIC_KEY = "report-signing.pub.pem"
RECORD = "record.json"
KEY_NAME = "selftest-report-signing"
CRYPTOPERIOD_DAYS = 825


def _identity(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((Path(state_dir) / "identity" / "gateway.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def installation_level(state_dir: Path, explicit: int | None = None) -> int:
    """--level, else the level the installation bundle recorded, else the other records."""
    level = _identity(state_dir).get("level")
    if explicit is None and level in (2, 3):
        return int(level)
    return resolve_level(state_dir, explicit)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    atomic_write(path, data, mode, dir_mode=0o755)


def signing_key(state_dir: Path, board: Board | None = None
                ) -> ed25519.Ed25519PrivateKey:
    """The gateway's report-signing key from the key store (generated there on first use)."""
    ks = KeyStore(state_dir, board)
    if ks.has(KEY_NAME):
        key = ed25519.Ed25519PrivateKey.from_private_bytes(ks.get(KEY_NAME))
    else:
        key = ed25519.Ed25519PrivateKey.generate()
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        ks.put(KEY_NAME, raw, "signs self-test reports (commissioning, platform requests)",
               "Ed25519", 256, "generated on the gateway", CRYPTOPERIOD_DAYS)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    path = Path(state_dir) / DIR / PUBLIC_KEY
    if not path.is_file() or path.read_bytes() != pub:
        _write(path, pub)
    return key


def selftest_report(state_dir: Path, level: int, board_name: str | None,
                    only: str | None = None) -> dict[str, Any]:
    """Run the self-test on scratch copies and return the (unsigned) report."""
    results = run_checks(state_dir, level, board_name, only)
    try:
        device: dict[str, Any] | None = deviceinfo.load(state_dir)
    except ConfigError:
        device = None
    return build_report(results, level, state_dir, board_name, device)


def signed_selftest(state_dir: Path, level: int, board_name: str | None,
                    board: Board | None = None, only: str | None = None,
                    bind: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the self-test on scratch copies and return the signed envelope.

    ``bind`` fields (a request ID, the purpose) go into the report before signing, so a
    report cannot be replayed as the answer to another request.
    """
    report = selftest_report(state_dir, level, board_name, only)
    report.update(bind or {})
    return sign_report(report, signing_key(state_dir, board))


class CommissioningRefused(MamoriError):
    """The self-test did not pass: nothing was signed or stored."""

    code = "commissioning-refused"

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report
        self.findings = findings(report)
        self.exit_code = int(report["summary"]["exit_code"]) or 1
        super().__init__(
            "not signed: %d check(s) did not pass (%s)" % (
                len(self.findings), ", ".join(f"{c} {v}" for c, v in self.findings)),
            "fix them and run the commissioning again, or sign the report as it is with "
            "--accept-findings REASON (the reason is recorded in the signed report)")


def findings(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(check ID, verdict) of every check that neither passed nor was not applicable."""
    return [(r["id"], r["verdict"]) for r in report["results"]
            if r["verdict"] not in (model.PASS, model.NOT_APPLICABLE)]


def commission(state_dir: Path, board_name: str | None = None, level: int | None = None,
               now: dt.datetime | None = None,
               accept_findings: str | None = None) -> dict[str, Any]:
    """Run, sign and store the commissioning self-test; returns the record entry + envelope.

    Only an all-pass (or pass + not applicable) report is signed, unless ``accept_findings``
    gives the reason to sign one with findings; that reason goes into the signed report.
    CommissioningRefused otherwise.
    """
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        raise StateError(f"state directory {state_dir} does not exist",
                         "pass the gateway's --state-dir")
    if accept_findings is not None and not accept_findings.strip():
        raise ConfigError("--accept-findings needs a reason (it is recorded)")
    ident = _identity(state_dir)
    lvl = installation_level(state_dir, level)
    board = resolve_board(state_dir, board_name) or ident.get("board")
    report = selftest_report(state_dir, lvl, board)
    report["purpose"] = "commissioning"
    found = findings(report)
    if found and accept_findings is None:
        raise CommissioningRefused(report)
    if found:
        report["accepted_findings"] = {"reason": (accept_findings or "").strip()[:500],
                                       "checks": [c for c, _ in found]}
    envelope = sign_report(report, signing_key(state_dir))
    when = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    name = f"selftest-{when}.json"
    out_dir = state_dir / DIR
    _write(out_dir / name, (json.dumps(envelope, indent=2, ensure_ascii=False) + "\n").encode())
    entry = {"file": name, "generated_at": report["generated_at"], "service_level": lvl,
             "verdict": report["summary"]["verdict"],
             "exit_code": report["summary"]["exit_code"],
             "report_sha256": hashlib.sha256(canonical(report)).hexdigest(),
             "keyid": envelope["signature"]["keyid"]}
    if "accepted_findings" in report:
        entry["accepted_findings"] = report["accepted_findings"]
    record_path = out_dir / RECORD
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    record.update({"format": "mamori-commissioning/1", "gateway_id": ident.get("gateway_id", ""),
                   "site_id": ident.get("site_id", ""), "board": board or "",
                   "public_key": PUBLIC_KEY})
    record["reports"] = list(record.get("reports", [])) + [entry]
    _write(record_path, (json.dumps(record, indent=2) + "\n").encode())
    return {"path": str(out_dir / name), "entry": entry, "envelope": envelope}


def public_key_id(state_dir: Path) -> str:
    """Key ID of the published report-signing key (what a verifier pins)."""
    pub = serialization.load_pem_public_key((Path(state_dir) / DIR / PUBLIC_KEY).read_bytes())
    assert isinstance(pub, ed25519.Ed25519PublicKey)
    return key_id(pub)
