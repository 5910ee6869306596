"""OTA checks: the running image matches its signed metadata, tampering is refused, floors and
history are sane (SR2-H-6, UK7, C11, R2-7, UK3, R2-8).

The signed metadata is the update agent's trusted TUF metadata (``update/tuf``): root →
targets → the board family's delegated role, verified with python-tuf. The running slot's
files are checked against its manifest (``verify_slot``), and on directory slots the bundle is
re-assembled deterministically and must hash to the signed bundle hash and chunk hashes.
Tampered copies (bundle, slot, metadata) live in the check's temp dir only.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from tuf.api.metadata import Metadata, Root, TargetFile, Targets

from firmware.common.chunks import chunk_hashes
from firmware.core.errors import ConfigError, IntegrityError, MamoriError
from firmware.core.update.chunks import verify_chunk
from firmware.core.update.version import compare, parse_version
from firmware.gateway.selftest.checks._common import (
    NOT_INSTALLED,
    Installed,
    installed_release,
    verdict,
)
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import (
    Outcome,
    check,
    failed,
    inconclusive,
    not_applicable,
    passed,
)
from firmware.gateway.update.blockslot import DirSlots
from firmware.gateway.update.slots import verify_slot
from firmware.gateway.update.store import Paths, read_json


def family_of(board: str) -> str:
    """The delegated role that signs this board's releases."""
    from firmware.common.families import family_of as fam

    return fam(board)


def verify_metadata(tuf_dir: Path, board: str,
                    family_bytes: bytes | None = None) -> TargetFile | None:
    """The board's bundle target from the trusted metadata, every signature verified."""
    try:
        root = Metadata[Root].from_bytes((tuf_dir / "root.json").read_bytes())
        targets = Metadata[Targets].from_bytes((tuf_dir / "targets.json").read_bytes())
        fam = family_of(board)
        raw = family_bytes if family_bytes is not None else (tuf_dir / (fam + ".json")).read_bytes()
        delegated = Metadata[Targets].from_bytes(raw)
        root.verify_delegate("root", root)
        root.verify_delegate("targets", targets)
        targets.verify_delegate(fam, delegated)
    except FileNotFoundError as exc:
        raise IntegrityError(f"trusted metadata missing: {Path(str(exc.filename)).name}")
    except Exception as exc:  # noqa: BLE001 - every python-tuf refusal is an integrity failure
        raise IntegrityError(f"metadata signature check failed: {type(exc).__name__}: {exc}")
    return delegated.signed.targets.get(board + "/firmware.bundle")


def release_record(signed: TargetFile | None) -> dict[str, Any]:
    """The Mamori release record (``custom.mamori``) of a signed target ({} when none)."""
    if signed is None:
        return {}
    rel: dict[str, Any] = (signed.unrecognized_fields.get("custom") or {}).get("mamori") or {}
    return rel


def rebuild_bundle(slot_dir: Path, out: Path) -> None:
    """Re-assemble the bundle a directory slot was extracted from (the build is deterministic)."""
    manifest = json.loads((slot_dir / "manifest.json").read_text())
    files = manifest.get("files", {})

    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
        add(tar, "sbom.cdx.json", (slot_dir / "sbom.cdx.json").read_bytes())
        for rel in sorted(files, key=PurePosixPath):
            info = tarfile.TarInfo("payload/" + rel)
            info.size = int(files[rel]["size"])
            info.mode = int(files[rel]["mode"])
            with open(slot_dir / "payload" / rel, "rb") as f:
                tar.addfile(info, f)


def _tamper_bundle(bundle: Path, target: dict[str, Any], work: Path) -> str | None:
    """Flip a byte in a copy of the bundle: the agent's chunk verifier must refuse it."""
    data = bytearray(bundle.read_bytes())
    pos = len(data) // 2
    data[pos] ^= 0x01
    size = int(target["chunk_size"])
    index = pos // size
    chunk = bytes(data[index * size:(index + 1) * size])
    try:
        verify_chunk(index, chunk, target["chunks"], int(target["length"]), size)
    except (IntegrityError, MamoriError):
        return None
    return f"a bundle copy with byte {pos} flipped passed the chunk verifier"


def _tamper_slot(slot_dir: Path, work: Path) -> str | None:
    copy = work / "slot-copy"
    shutil.copytree(slot_dir, copy, symlinks=True)
    manifest = json.loads((copy / "manifest.json").read_text())
    rel = sorted(manifest.get("files", {}))[0]
    p = copy / "payload" / rel
    p.write_bytes(p.read_bytes() + b"\n# tampered by the self-test\n")
    try:
        verify_slot(copy)
    except IntegrityError:
        return None
    return f"a slot copy with {rel} modified passed verify_slot"


def _tamper_metadata(tuf_dir: Path, board: str) -> str | None:
    raw = json.loads((tuf_dir / (family_of(board) + ".json")).read_bytes())
    tf = raw["signed"]["targets"].get(board + "/firmware.bundle")
    if tf is None:
        return None
    tf["hashes"]["sha256"] = hashlib.sha256(b"evil").hexdigest()
    try:
        verify_metadata(tuf_dir, board, json.dumps(raw).encode())
    except IntegrityError:
        return None
    return "metadata with a substituted bundle hash verified"


def scratch_repo_exercise(work: Path) -> tuple[list[str], list[str]]:
    """Sign a scratch repo; the TUF client must accept it and refuse it once a signed target
    hash was altered."""
    from firmware.gateway.selftest import scratchtuf
    from firmware.gateway.update.tufclient import TufClient

    repo = work / "repo"
    trusted = scratchtuf.build(repo, b"print('selftest')\n")
    problems, evidence = [], []

    def client(name: str) -> TufClient:
        d = work / name
        d.mkdir()
        (d / "root.json").write_bytes(trusted)
        return TufClient(d, repo.as_uri() + "/", clock=time.time)

    c = client("good")
    c.refresh()
    if c.target(scratchtuf.TARGET) is None:
        problems.append("the TUF client did not find the target in an untampered repo")
    else:
        evidence.append("scratch signed repo: target verified by the gateway's TUF client")
    scratchtuf.tamper_target_hash(repo)
    try:
        c2 = client("tampered")
        c2.refresh()
        c2.target(scratchtuf.TARGET)
        problems.append("the TUF client accepted metadata whose target hash was altered")
    except MamoriError as exc:
        evidence.append(f"tampered metadata refused: {exc.message[:120]}")
    return problems, evidence


@check("ota.image-integrity", "Running image matches its signed metadata; tampering refused",
       requirements=["SR2-H-6", "UK7", "C11"],
       remediation="reinstall the current release with `mamori-gateway update`; if the slot "
                   "or the trusted metadata was altered, treat the gateway as compromised")
def image_integrity(ctx: CheckContext) -> Outcome:
    """Verify the running slot against the signed target; tampered copies must be refused."""
    inst = installed_release(ctx, require_version=False)
    if isinstance(inst, Outcome):
        return inst
    if not inst.version:
        try:
            issues, shown = scratch_repo_exercise(ctx.tempdir())
        except MamoriError as exc:
            return inconclusive(f"cannot exercise the verifier on a scratch repo: {exc}")
        if issues:
            return failed(*issues, *shown)
        return not_applicable(NOT_INSTALLED, *shown)
    problems: list[str] = []
    evidence = [f"running {inst.version} from slot {inst.slot}"]
    target = inst.target
    try:
        signed = verify_metadata(inst.paths.tuf, inst.board.name)
    except IntegrityError as exc:
        return failed(str(exc), *evidence)
    if signed is None:
        problems.append("the trusted metadata lists no release for this board")
    else:
        rel = release_record(signed)
        if rel.get("version") == inst.version:
            if signed.hashes.get("sha256") != target.get("sha256") or \
                    rel.get("chunks") != target.get("chunks"):
                problems.append("the slot's release record differs from the signed target")
            else:
                evidence.append("slot record equals the signed target (root → targets → "
                                f"{family_of(inst.board.name)} signatures verified)")
        else:
            evidence.append(f"trusted metadata now lists {rel.get('version')}; the slot record "
                            "of its signed target is used")
    if isinstance(inst.store, DirSlots):
        try:
            verify_slot(inst.slot_dir)
            evidence.append("every payload file matches the slot manifest")
        except IntegrityError as exc:
            problems.append(str(exc))
        work = ctx.tempdir()
        bundle = work / "running.bundle"
        try:
            rebuild_bundle(inst.slot_dir, bundle)
            length, sha, chunks = chunk_hashes(bundle, int(target.get("chunk_size") or 1))
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"the running image cannot be re-assembled: {exc}")
        else:
            if sha != target.get("sha256") or chunks != target.get("chunks"):
                problems.append("the running image does not hash to its signed bundle hash")
            else:
                evidence.append(f"re-assembled image: {length} bytes, sha256 {sha[:16]}…, "
                                f"{len(chunks)} chunk hash(es) equal the signed ones")
                for why in (_tamper_bundle(bundle, target, work),
                            _tamper_slot(inst.slot_dir, work)):
                    if why:
                        problems.append(why)
    else:
        evidence.append("block slots: the slot record was written after a read-back compare")
    why = _tamper_metadata(inst.paths.tuf, inst.board.name)
    if why:
        problems.append(why)
    return verdict(problems, evidence,
                   "tampered copies (bundle chunk, slot file, metadata hash) refused")


def _installed_record(ctx: CheckContext,
                      record: Callable[[Paths], Path]) -> tuple[Installed, Any] | Outcome:
    """The running release and one of the agent's JSON records (None when missing), or the
    outcome that ends the check (not applicable, or an unreadable record)."""
    inst = installed_release(ctx)
    if isinstance(inst, Outcome):
        return inst
    try:
        return inst, read_json(record(inst.paths), None)
    except ConfigError as exc:
        return failed(str(exc))


@check("ota.floors", "Anti-rollback version and time floors present and sane",
       requirements=["R2-7", "UK3"],
       remediation="restore update/floors.json from the agent (run `mamori-gateway update`); "
                   "a floor above the running version or in the future means tampering")
def floors_sane(ctx: CheckContext) -> Outcome:
    """update/floors.json: version floor ≤ running version, time floor set and not future."""
    got = _installed_record(ctx, lambda p: p.floors)
    if isinstance(got, Outcome):
        return got
    inst, floors = got
    if not isinstance(floors, dict):
        return failed("update/floors.json is missing: downgrades would not be refused")
    problems = []
    vfloor = str(floors.get("version") or "")
    try:
        if not vfloor:
            problems.append("no version floor recorded")
        else:
            parse_version(vfloor)
            if compare(vfloor, inst.version) > 0:
                problems.append(f"version floor {vfloor} is above the running {inst.version}")
    except MamoriError as exc:
        problems.append(f"version floor {vfloor!r} is not a version: {exc}")
    tfloor = floors.get("time")
    if not isinstance(tfloor, (int, float)) or tfloor <= 0:
        problems.append("no time floor recorded: a reset clock could replay expired metadata")
    elif tfloor > time.time() + 86400:
        problems.append("time floor is more than a day in the future")
    evidence = [f"running {inst.version}; version floor {vfloor or '-'}; time floor "
                f"{tfloor}; failed releases {floors.get('failed') or []}"]
    return verdict(problems, evidence)


@check("ota.history", "On-device install history readable and consistent",
       requirements=["R2-8"],
       remediation="restore update/history.json (the agent appends every install and "
                   "rollback); investigate who removed it")
def history_readable(ctx: CheckContext) -> Outcome:
    """update/history.json is a list of dated entries naming the running version."""
    got = _installed_record(ctx, lambda p: p.history)
    if isinstance(got, Outcome):
        return got
    inst, rows = got
    if not isinstance(rows, list) or not rows:
        return failed("update/history.json is missing or empty")
    bad = [i for i, r in enumerate(rows) if not isinstance(r, dict) or
           not {"action", "version", "time"} <= set(r)]
    if bad:
        return failed(f"{len(bad)} history entr(y/ies) lack action, version or time "
                      f"(first: #{bad[0]})")
    if not any(r["action"] == "installed" and r["version"] == inst.version for r in rows):
        return failed(f"the running version {inst.version} has no 'installed' entry")
    last = rows[-1]
    return passed(f"{len(rows)} entr(y/ies); last: {last['action']} {last['version']} at "
                  f"{last['time']}")
