"""The TUF release repository (python-tuf metadata API): top-level roles, one delegated role per
board family, threshold signatures, expiry, key rotation and publication of firmware bundles.

Layout: REPO/keys (private keys, 0600: keep root offline in a real deployment), REPO/metadata
(what gateways fetch; consistent snapshots: N.root.json, N.snapshot.json, N.targets.json,
N.<family>.json, timestamp.json), REPO/targets/<board>/<sha256>.<name> (bundles and SBOMs),
REPO/history.jsonl.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from firmware.common.boards import load_board
from firmware.common.families import FAMILIES, family_of, sbom_path, target_path
from firmware.core.errors import ConfigError, PolicyError
from firmware.core.update.floors import SIGNED_AT
from firmware.core.update.version import compare, parse_version
from host_tools.release import appslot, history
from host_tools.release.bundle import DEFAULT_CHUNK, build_bundle, chunk_hashes, file_sha256
from host_tools.release.keys import KeyStore
from host_tools.release.layout import check_payload

TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
DAY = 86400.0
LIFETIMES = {"root": 365 * DAY, "targets": 90 * DAY, "snapshot": 7 * DAY, "timestamp": DAY,
             "family": 90 * DAY}
REPO_FORMAT = "mamori-release-repo/1"
S = TypeVar("S", Root, Targets, Snapshot, Timestamp)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ReleaseRepo:
    """A release repository on disk; every mutating method re-signs and writes what changed."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time,
                 lifetimes: dict[str, float] | None = None) -> None:
        self.path = path
        self.meta_dir = path / "metadata"
        self.targets_dir = path / "targets"
        self.keys = KeyStore(path / "keys")
        self.clock = clock
        self.lifetimes = dict(LIFETIMES)
        if lifetimes:
            self.lifetimes.update(lifetimes)
        if not (path / "repo.json").exists():
            raise ConfigError("is not a release repository", str(path),
                              hint="create one with `mamori release init %s`" % path)

    # ---- creation -------------------------------------------------------------------------

    @classmethod
    def init(cls, path: Path, root_keys: int = 2, root_threshold: int = 2,
             clock: Callable[[], float] = time.time,
             lifetimes: dict[str, float] | None = None) -> ReleaseRepo:
        """Create keys and version-1 metadata for every role and board family."""
        if (path / "repo.json").exists():
            raise ConfigError("already holds a release repository", str(path))
        if not 1 <= root_threshold <= root_keys:
            raise ConfigError("root threshold must be between 1 and the number of root keys")
        path.mkdir(parents=True, exist_ok=True)
        for sub in ("metadata", "targets"):
            (path / sub).mkdir(exist_ok=True)
        _atomic_write(path / "repo.json", json.dumps({"format": REPO_FORMAT}).encode())
        repo = cls(path, clock, lifetimes)
        root = Root(expires=repo._expiry("root"), consistent_snapshot=True)
        for _ in range(root_keys):
            root.add_key(repo.keys.generate("root").public_key, "root")
        root.roles["root"].threshold = root_threshold
        for role in ("targets", "snapshot", "timestamp"):
            root.add_key(repo.keys.generate(role).public_key, role)
        targets = Targets(expires=repo._expiry("targets"))
        targets.delegations = Delegations(keys={}, roles={})
        for fam in FAMILIES:
            repo._add_family(targets, fam)
        repo._write(Metadata(root), "root")
        repo._write(Metadata(targets), "targets")
        snapshot = Snapshot(expires=repo._expiry("snapshot"))
        snapshot.meta = {"targets.json": MetaFile(1)}
        for fam in FAMILIES:
            repo._write(Metadata(Targets(expires=repo._expiry("family"))), fam)
            snapshot.meta[fam + ".json"] = MetaFile(1)
        repo._write(Metadata(snapshot), "snapshot")
        repo._write(Metadata(Timestamp(expires=repo._expiry("timestamp"),
                                       snapshot_meta=MetaFile(1))), "timestamp")
        history.append(path, {"action": "init", "families": sorted(FAMILIES),
                              "root_keys": root_keys, "root_threshold": root_threshold})
        return repo

    # ---- metadata I/O ---------------------------------------------------------------------

    def _expiry(self, kind: str) -> datetime.datetime:
        t = self.clock() + self.lifetimes[kind]
        return datetime.datetime.fromtimestamp(int(t), datetime.UTC)

    def _signer_role(self, name: str) -> str:
        return name

    def _write(self, md: Metadata[Any], name: str, extra_signers: list[Any] | None = None) -> None:
        md.signatures.clear()
        if name == "timestamp":
            # The gateways' time floor comes from here (top-level, signed by the timestamp key).
            md.signed.unrecognized_fields[SIGNED_AT] = int(self.clock())
        signers = self.keys.signers(name) + list(extra_signers or [])
        if not signers:
            raise ConfigError("no signing key for role %s" % name, str(self.keys.dir))
        for s in signers:
            md.sign(s, append=True)
        data = md.to_bytes(JSONSerializer(compact=False))
        if name == "timestamp":
            _atomic_write(self.meta_dir / "timestamp.json", data)
            return
        _atomic_write(self.meta_dir / ("%d.%s.json" % (md.signed.version, name)), data)
        if name == "root":
            _atomic_write(self.meta_dir / "root.json", data)

    def _load(self, name: str, cls: type[S]) -> Metadata[S]:
        if name == "timestamp":
            path = self.meta_dir / "timestamp.json"
        elif name == "root":
            path = self.meta_dir / "root.json"
        else:
            snap = self._load("snapshot", Snapshot) if name != "snapshot" else None
            if name == "snapshot":
                ver = self._load("timestamp", Timestamp).signed.snapshot_meta.version
            else:
                assert snap is not None
                meta = snap.signed.meta.get(name + ".json")
                if meta is None:
                    raise ConfigError("role %s is not in the snapshot" % name, str(self.path))
                ver = meta.version
            path = self.meta_dir / ("%d.%s.json" % (ver, name))
        md = Metadata[S].from_file(str(path))
        if not isinstance(md.signed, cls):
            raise ConfigError("holds the wrong kind of metadata", str(path))
        return md

    def _bump(self, md: Metadata[Any], kind: str) -> None:
        md.signed.version += 1
        md.signed.expires = self._expiry(kind)

    def _publish_snapshot(self, changed: dict[str, int]) -> int:
        snap = self._load("snapshot", Snapshot)
        for name, ver in changed.items():
            snap.signed.meta[name + ".json"] = MetaFile(ver)
        self._bump(snap, "snapshot")
        self._write(snap, "snapshot")
        ts = self._load("timestamp", Timestamp)
        ts.signed.snapshot_meta = MetaFile(snap.signed.version)
        self._bump(ts, "timestamp")
        self._write(ts, "timestamp")  # written last: publication is atomic for clients
        return snap.signed.version

    def _add_family(self, targets: Targets, fam: str) -> None:
        signer = self.keys.generate(fam)
        boards = FAMILIES.get(fam, (fam,))
        assert targets.delegations is not None and targets.delegations.roles is not None
        targets.delegations.roles[fam] = DelegatedRole(
            name=fam, keyids=[], threshold=1, terminating=True,
            paths=[b + "/*" for b in boards])
        targets.add_key(signer.public_key, fam)

    # ---- queries --------------------------------------------------------------------------

    def current(self, board: str) -> dict[str, Any] | None:
        """The custom release fields of a board's current release, or None."""
        fam = family_of(board)
        try:
            md = self._load(fam, Targets)
        except ConfigError:
            return None
        tf = md.signed.targets.get(target_path(board))
        if tf is None:
            return None
        custom: dict[str, Any] = tf.unrecognized_fields.get("custom", {}).get("mamori", {})
        return custom

    def trusted_root(self) -> bytes:
        """The first root metadata: what a gateway is provisioned with."""
        return (self.meta_dir / "1.root.json").read_bytes()

    # ---- publish --------------------------------------------------------------------------

    def publish(self, board: str, version: str, payload: Path, changelog: str = "",
                min_version: str = "", scan_report: Path | None = None,
                chunk_size: int = DEFAULT_CHUNK, health: str = "") -> dict[str, Any]:
        """Build, sign and publish a release of `board`; return its release fields."""
        profile = load_board(board)
        parse_version(version)
        check_payload(payload, profile)  # a bad layout is refused now, not at flash time
        prev = self.current(board)
        if prev is not None and compare(version, prev["version"]) <= 0:
            raise PolicyError("version %s is not newer than the published %s for %s" % (
                version, prev["version"], board), "releases only move forward")
        if not min_version:
            min_version = prev.get("min_version", "") if prev else ""
        if min_version:
            parse_version(min_version)
            if compare(min_version, version) > 0:
                raise PolicyError("minimum installable version %s is above the release %s" % (
                    min_version, version))
            if prev and prev.get("min_version") and compare(min_version,
                                                            prev["min_version"]) < 0:
                raise PolicyError("minimum installable version may not go down (was %s)"
                                  % prev["min_version"])
        if profile.base_os_requires is not None and (payload / "app/firmware").is_dir():
            # An OTA update replaces the dependencies with the code: the app/ must carry them.
            appslot.check_app(profile, payload / "app")
        scan_hash = file_sha256(scan_report) if scan_report else None
        now = self.clock()
        bdir = self.targets_dir / board
        bdir.mkdir(parents=True, exist_ok=True)
        fd, tmpname = tempfile.mkstemp(dir=bdir, prefix=".build-")
        os.close(fd)
        tmp = Path(tmpname)
        try:
            built = build_bundle(payload, profile, version, tmp, now, health)
            length, sha, chunks = chunk_hashes(tmp, chunk_size)
            os.replace(tmp, bdir / (sha + ".firmware.bundle"))
        finally:
            if tmp.exists():
                tmp.unlink()
        sbom_bytes: bytes = built["sbom_bytes"]
        sbom_sha = hashlib.sha256(sbom_bytes).hexdigest()
        sbom_name = sbom_path(board, version)
        _atomic_write(self.targets_dir / board / (sbom_sha + "." + sbom_name.split("/", 1)[1]),
                      sbom_bytes)
        who = history.who()
        custom = {
            "board": board, "version": version, "changelog": changelog,
            "min_version": min_version, "scan_report_sha256": scan_hash,
            "sbom_sha256": sbom_sha, "sbom_path": sbom_name, "chunk_size": chunk_size,
            "chunks": chunks, "released_at": int(now), "released_by": who,
            "components": built["manifest"]["components"],
        }
        fam = family_of(board)
        self._ensure_family(fam)
        fmd = self._load(fam, Targets)
        fmd.signed.targets[target_path(board)] = TargetFile(
            length, {"sha256": sha}, target_path(board),
            unrecognized_fields={"custom": {"mamori": custom}})
        fmd.signed.targets[sbom_name] = TargetFile(len(sbom_bytes), {"sha256": sbom_sha},
                                                   sbom_name)
        self._bump(fmd, "family")
        self._write(fmd, fam)
        self._publish_snapshot({fam: fmd.signed.version})
        history.append(self.path, {
            "action": "publish", "board": board, "boards": [board], "version": version,
            "changelog": changelog, "min_version": min_version, "sha256": sha,
            "length": length, "scan_report_sha256": scan_hash, "role": fam})
        return custom

    def _ensure_family(self, fam: str) -> None:
        tmd = self._load("targets", Targets)
        assert tmd.signed.delegations is not None and tmd.signed.delegations.roles is not None
        if fam in tmd.signed.delegations.roles:
            return
        self._add_family(tmd.signed, fam)
        self._bump(tmd, "targets")
        self._write(tmd, "targets")
        fmd = Metadata(Targets(expires=self._expiry("family")))
        self._write(fmd, fam)
        self._publish_snapshot({"targets": tmd.signed.version, fam: 1})

    # ---- key rotation ---------------------------------------------------------------------

    def rotate_key(self, role: str) -> dict[str, Any]:
        """Replace a role's key (one root key at a time); the old private key is destroyed."""
        if role in TOP_ROLES:
            return self._rotate_top(role)
        tmd = self._load("targets", Targets)
        assert tmd.signed.delegations is not None and tmd.signed.delegations.roles is not None
        if role not in tmd.signed.delegations.roles:
            raise ConfigError("unknown role %r" % role, hint="roles: %s, %s" % (
                ", ".join(TOP_ROLES), ", ".join(sorted(tmd.signed.delegations.roles))))
        old = self.keys.keyids(role)
        fmd = self._load(role, Targets)
        new = self.keys.generate(role)
        for k in old:
            tmd.signed.revoke_key(k, role)
        tmd.signed.add_key(new.public_key, role)
        for k in old:
            self.keys.retire(role, k)
        self._bump(tmd, "targets")
        self._write(tmd, "targets")
        self._bump(fmd, "family")
        self._write(fmd, role)
        self._publish_snapshot({"targets": tmd.signed.version, role: fmd.signed.version})
        return self._rotated(role, old, new.public_key.keyid)

    def _rotate_top(self, role: str) -> dict[str, Any]:
        rmd = self._load("root", Root)
        old_root_signers = self.keys.signers("root")
        old = [self.keys.keyids("root")[0]] if role == "root" else self.keys.keyids(role)
        new = self.keys.generate(role)
        for k in old:
            rmd.signed.revoke_key(k, role)
        rmd.signed.add_key(new.public_key, role)
        self._bump(rmd, "root")
        # A new root is signed by the old root keys (threshold of the trusted root) and by the
        # new set (threshold of the new root), so clients can chain to it.
        extra = [s for s in old_root_signers if s.public_key.keyid in old] if role == "root" \
            else []
        self._write(rmd, "root", extra_signers=extra)
        for k in old:
            self.keys.retire(role, k)
        if role == "targets":
            tmd = self._load("targets", Targets)
            self._bump(tmd, "targets")
            self._write(tmd, "targets")
            self._publish_snapshot({"targets": tmd.signed.version})
        elif role in ("snapshot", "timestamp"):
            self._publish_snapshot({})
        return self._rotated(role, old, new.public_key.keyid)

    def _rotated(self, role: str, old: list[str], new: str) -> dict[str, Any]:
        entry = {"action": "rotate-key", "role": role, "old_keyids": old, "new_keyid": new}
        history.append(self.path, entry)
        return entry


def copy_public(repo: Path, dest: Path) -> None:
    """Copy what gateways may see (metadata and targets, never keys) to `dest`."""
    for sub in ("metadata", "targets"):
        shutil.copytree(repo / sub, dest / sub, dirs_exist_ok=True)
