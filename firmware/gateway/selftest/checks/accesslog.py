"""Access-log checks: chain verifies, synthetic command recorded, encrypted at rest, uploaded.

Requirements: SR3-H-8 / R3-5 (accumulate logs, let the platform analyse them), SR3-H-6 (stored
assets encrypted), UK10. The live log is only read (verification needs no lock and writes
nothing); every write goes through the store's normal API into the check's scratch copy.
"""

from __future__ import annotations

import binascii
import json
import secrets
import stat
import time
from pathlib import Path
from typing import Any

from firmware.common.accesslog.files import list_segments
from firmware.common.accesslog.reader import records, verify
from firmware.common.accesslog.source import open_source
from firmware.core.accesslog import framing
from firmware.core.accesslog.docs import parse_checkpoint
from firmware.core.accesslog.writer import split_record
from firmware.core.errors import IntegrityError, MamoriError, ProtocolError
from firmware.core.events import Event
from firmware.gateway.accesslog.service import AccessLogService
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.selftest import scan
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import (
    Outcome,
    check,
    failed,
    inconclusive,
    not_applicable,
    passed,
)
from firmware.gateway.selftest.scratchgw import ScratchGateway, stand_in_board

LOG_DIR = "accesslog"
STATUS_FILE = "run/status.json"
REQUIRED_FIELDS = ("source", "principal", "action", "target", "result", "ts", "boot")
# Files the store keeps besides its segments; everything else in the log folder is suspect.
KNOWN_FILES = ("log.json", ".lock", "keys/data.key", "keys/sign.key", "keys/seal.key",
               "keys/seal.key.tmp", "outbox/keys.bin", "outbox/state.json",
               "outbox/state.json.tmp")
WRAPPED = ("keys/data.key", "keys/sign.key", "keys/seal.key", "outbox/keys.bin")
_RECORD_MARKERS = (b'"principal"', b'"action"', b'"target"')
MAX_UPLOAD_LAG = 3600.0  # a sealed checkpoint head should reach the platform within an hour
LOG_REQS = ["SR3-H-8", "R3-5", "UK10"]


def _live_status(ctx: CheckContext) -> dict[str, Any]:
    try:
        data = json.loads((ctx.live_state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _no_log(ctx: CheckContext) -> str | None:
    """Why there is no usable live log (None when there is one)."""
    log_dir = ctx.live_state_dir / LOG_DIR
    if not log_dir.is_dir():
        return f"no access log in {log_dir}: logging is disabled"
    if not list_segments(log_dir):
        return f"no access-log segment in {log_dir}: logging is disabled"
    return None


def _verify_live(ctx: CheckContext) -> dict[str, Any]:
    """Verify the live log; once more if it fails (a running gateway may be mid-checkpoint)."""
    report = verify(open_source(ctx.live_state_dir))
    if not report["ok"]:
        time.sleep(0.2)
        report = verify(open_source(ctx.live_state_dir))
    return report


def _problem(p: dict[str, Any]) -> str:
    extra = "".join(f", {k} {p[k]}" for k in ("seq", "epoch", "offset") if k in p)
    return f"{p['where']}: {p['problem']}{extra}"


@check("accesslog.chain", "Access log present, writable, and its hash chain and seals verify",
       requirements=LOG_REQS,
       remediation="keep the access-log service in the composition; if verification fails, "
                   "preserve STATE_DIR/accesslog as evidence and analyse it with "
                   "`mamori logs verify`")
def chain_verifies(ctx: CheckContext) -> Outcome:
    """Read-only verification of the live log, and proof the service can keep writing it."""
    why = _no_log(ctx)
    if why:
        return failed(why)
    problems = []
    log_dir = ctx.live_state_dir / LOG_DIR
    segs = list_segments(log_dir)
    for p in [log_dir] + [p for _n, p in segs[-1:]]:
        mode = stat.S_IMODE(p.stat().st_mode)
        if not mode & stat.S_IWUSR:
            problems.append(f"{p.relative_to(ctx.live_state_dir)} is not writable "
                            f"({mode:04o}): new events cannot be recorded")
    st = _live_status(ctx)
    if st and "accesslog" not in st:
        problems.append("the running gateway has no access-log service (run/status.json)")
    elif st and int(st["accesslog"].get("errors") or 0) > 0:
        problems.append("the access-log service reported %d failed append(s)"
                        % int(st["accesslog"]["errors"]))
    try:
        report = _verify_live(ctx)
    except MamoriError as exc:
        return failed(f"the live log cannot be read: {exc}", *problems)
    evidence = [f"{report['segments']} segment(s), {report['records']} record(s), "
                f"{report['checkpoints']} checkpoint(s), last epoch {report['last_epoch']}"]
    evidence += ["note: " + w for w in report["warnings"][:5]]
    if not report["ok"]:
        return failed(*scan.limit([_problem(p) for p in report["problems"]]), *problems,
                      *evidence)
    if problems:
        return failed(*problems, *evidence)
    return passed("hash chain, record tags, seals and checkpoint signatures verify", *evidence)


def _scratch_service(ctx: CheckContext) -> tuple[Gateway, AccessLogService]:
    scratch = ctx.scratch()
    board = stand_in_board(ctx.board_name or "unknown")
    gw = ScratchGateway(scratch, board)  # silent: synthetic events stay out of the process log
    svc = AccessLogService(gw)
    svc.open()
    return gw, svc


@check("accesslog.synthetic-record", "A synthetic command produces a complete, verifiable record",
       requirements=LOG_REQS,
       remediation="make sure every command path emits an Event with source, principal, "
                   "action, target and result, and that the access-log service is subscribed")
def synthetic_record(ctx: CheckContext) -> Outcome:
    """Emit a synthetic command on a scratch gateway's bus; its record must be whole and verify."""
    why = _no_log(ctx)
    if why:
        return failed(why, "a fresh log would be created here, which proves nothing")
    try:
        gw, svc = _scratch_service(ctx)
    except MamoriError as exc:
        return failed(f"the log cannot be opened for writing (a copy of it): {exc}")
    probe = "selftest-" + secrets.token_hex(4)
    try:
        ev = gw.emit(Event("command.unlock", "notice", source="platform", principal=probe,
                           action="unlock", target="selftest-door", result="refused",
                           reason="synthetic self-test command", params={"probe": probe}))
        svc.store.checkpoint("selftest")
    finally:
        svc.store.close()
    src = open_source(ctx.scratch())
    report = verify(src)
    if not report["ok"]:
        return failed("the log with the synthetic record does not verify",
                      *scan.limit([_problem(p) for p in report["problems"]]))
    found = [r for r in records(src) if r.get("principal") == probe]
    if not found:
        return failed("the synthetic command left no record in the log")
    rec = found[-1]
    missing = [f for f in REQUIRED_FIELDS if rec.get(f) in (None, "")]
    if rec.get("boot") != gw.boot_id:
        missing.append("boot (expected the emitting gateway's boot id)")
    if missing:
        return failed("record seq %s lacks: %s" % (rec.get("seq"), ", ".join(missing)))
    shown = {k: rec[k] for k in ("seq", "source", "principal", "action", "target", "result")}
    return passed(f"event {ev.event_id} recorded as seq {rec['seq']}: {json.dumps(shown)}",
                  "time %.3f, boot id %s…, chain and seals verify" % (rec["ts"], rec["boot"][:8]))


def _plaintext_findings(log_dir: Path, root: Path) -> list[str]:
    """Record frames whose payload is readable JSON, and unknown files that hold records."""
    out: list[str] = []
    if not log_dir.is_dir():
        return out
    segs = {p for _n, p in list_segments(log_dir)}
    for path, rel_log, st in scan.regular_files(log_dir):
        rel = path.relative_to(root).as_posix()
        data = scan.read_limited(path, st)
        if data is None:
            continue
        if path in segs:
            frames, _end, _trouble = framing.scan(data, allow_torn=True)
            for off, ftype, body in frames:
                if ftype != framing.RECORD:
                    continue
                try:
                    seq, _nonce, ct, _tag = split_record(body)
                except IntegrityError:
                    continue
                if ct.lstrip()[:1] == b"{" and any(m in ct for m in _RECORD_MARKERS):
                    out.append(f"{rel}: record seq {seq} at offset {off} is stored in clear")
                    break
        elif rel_log in WRAPPED:
            if not data.startswith(b"MKW1"):
                out.append(f"{rel}: key file is not wrapped under the device key")
        elif rel_log not in KNOWN_FILES and any(m in data for m in _RECORD_MARKERS):
            out.append(f"{rel}: file outside the encrypted segments holds log records in clear")
    return out


def _canary_needles(canary: str) -> list[bytes]:
    raw = canary.encode()
    return [raw, binascii.hexlify(raw), json.dumps(canary).encode(), canary.upper().encode()]


@check("accesslog.encrypted-at-rest", "Personal data written to the log is absent from raw files",
       requirements=["SR3-H-6", "SR3-H-8", "UK4", "UK8"],
       remediation="the access log must encrypt every record (AES-GCM under the KEK-wrapped "
                   "data key); remove any plaintext copy of records from the state dir")
def encrypted_at_rest(ctx: CheckContext) -> Outcome:
    """Write a canary name and phone number through the store's API into a scratch copy."""
    live_findings = _plaintext_findings(ctx.live_state_dir / LOG_DIR, ctx.live_state_dir)
    if _no_log(ctx):
        return failed(_no_log(ctx) or "", *live_findings)
    canary = "Selftest Canary-%s 090-%s" % (secrets.token_hex(4), secrets.token_hex(3))
    try:
        gw, svc = _scratch_service(ctx)
    except MamoriError as exc:
        return failed(f"the log cannot be opened for writing (a copy of it): {exc}",
                      *live_findings)
    try:
        gw.emit(Event("owner.profile_updated", "notice", source="owner-app",
                      principal="selftest-owner", action="update", target="owner-profile",
                      result="ok", params={"display_name": canary, "note": canary}))
        svc.store.checkpoint("selftest")
    finally:
        svc.store.close()
    scratch = ctx.scratch()
    leaks = []
    needles = _canary_needles(canary)
    for path, rel, st in scan.regular_files(scratch):
        data = scan.read_limited(path, st)
        if data is not None and any(n in data for n in needles):
            leaks.append(f"{rel}: canary personal data found in the raw file")
    unreadable = ""
    try:
        readable = any(canary in json.dumps(r) for r in records(open_source(scratch)))
    except MamoriError as exc:
        readable, unreadable = False, f"the canary record cannot be read back: {exc}"
    problems = leaks + live_findings
    if problems:
        return failed(*scan.limit(problems), *([unreadable] if unreadable else []))
    if unreadable:
        return failed(unreadable)
    if not readable:
        return inconclusive("the canary was not found in the decrypted log either "
                            "(dropped by minimisation?): the probe proves nothing")
    n = sum(1 for _ in scan.regular_files(scratch))
    return passed(f"canary absent from all {n} raw files of the scratch state dir, present "
                  "after decryption with the log's data key",
                  "live log: every record frame is ciphertext, key files are KEK-wrapped, no "
                  "plaintext record file")


def _wan_configured(ctx: CheckContext) -> bool:
    opt = ctx.options.get("wan_configured")
    if opt is not None:
        return bool(opt)
    return (ctx.live_state_dir / "wan").is_dir() or "wan" in _live_status(ctx)


def _checkpoints(log_dir: Path) -> list[dict[str, Any]]:
    out = []
    for _n, p in list_segments(log_dir):
        frames, _end, _trouble = framing.scan(p.read_bytes(), allow_torn=True)
        for _off, ftype, body in frames:
            if ftype == framing.CHECKPOINT:
                try:
                    out.append(parse_checkpoint(body))
                except ProtocolError:
                    continue
    return out


@check("accesslog.upload", "Access-log heads and keys reach the platform promptly",
       requirements=LOG_REQS,
       remediation="check the WAN connection (`mamori-gateway status`); the access log "
                   "uploads its key bundle once and every checkpoint head as it is sealed")
def upload_recent(ctx: CheckContext) -> Outcome:
    """Compare the sealed checkpoints with what the uploader has delivered (outbox/state.json)."""
    if not _wan_configured(ctx):
        return not_applicable("no WAN (platform connection) is configured on this gateway: "
                              "the log is kept locally only")
    why = _no_log(ctx)
    if why:
        return failed(why)
    log_dir = ctx.live_state_dir / LOG_DIR
    try:
        sent = json.loads((log_dir / "outbox" / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        sent = {}
    head_epoch = int(sent.get("head_epoch", -1)) if isinstance(sent, dict) else -1
    cps = _checkpoints(log_dir)
    if not cps:
        return failed("the log holds no sealed checkpoint to upload")
    now = float(ctx.options.get("now") or time.time())
    pending = [c for c in cps if c["epoch"] > head_epoch]
    problems, evidence = [], [f"last sealed epoch {cps[-1]['epoch']}, last uploaded head "
                              f"epoch {head_epoch}"]
    if (log_dir / "outbox" / "keys.bin").exists():
        first = cps[0].get("ts", now)
        if now - float(first) > MAX_UPLOAD_LAG:
            problems.append("the log's verification-key bundle has not reached the platform "
                            "(outbox/keys.bin still waiting)")
        else:
            evidence.append("verification-key bundle waiting for its first upload")
    if pending:
        age = now - float(pending[0].get("ts") or now)
        if age > MAX_UPLOAD_LAG:
            problems.append("%d sealed head(s) not uploaded, the oldest (epoch %d) for %.0f min"
                            % (len(pending), pending[0]["epoch"], age / 60))
        else:
            evidence.append("%d head(s) pending, oldest %.0f s old" % (len(pending), age))
    if problems:
        return failed(*problems, *evidence)
    return passed("every head older than %d min has been uploaded" % (MAX_UPLOAD_LAG / 60),
                  *evidence)
