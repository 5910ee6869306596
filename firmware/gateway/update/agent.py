"""The gateway update agent: check, download (resumable, verify-before-write), write, switch,
trial boot, health-gated commit or automatic rollback. Every step persists before it acts.

Every state has a way out: a refusal at any step before the switch (check, download, write)
discards the staging area, is recorded with its reason in the history and on the alert outbox,
and the next run checks the repository afresh. The steps after a final record write (floors,
history, alert) are idempotent and replayed at the next run until the record says `settled`.
"""

from __future__ import annotations

import binascii
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.core import strictjson
from firmware.core.errors import (
    ConfigError,
    IntegrityError,
    MamoriError,
    PolicyError,
    ProtocolError,
    StateError,
)
from firmware.core.events import Event
from firmware.core.update import machine as m
from firmware.core.update.chunks import validate_plan
from firmware.core.update.floors import decide, mark_failed, new_floors, raise_floors
from firmware.gateway.runtime.resalemarker import clear_marker, marker
from firmware.gateway.update import outbox, staging
from firmware.gateway.update.blockslot import BlockSlots, slot_store
from firmware.gateway.update.boot import SimBoot, TrybootBoot
from firmware.gateway.update.download import download
from firmware.gateway.update.fetch import Fetcher
from firmware.gateway.update.offlinecopy import extract_copy
from firmware.gateway.update.slots import DefectiveBundle, default_health
from firmware.gateway.update.store import Paths, read_json, write_json
from firmware.gateway.update.tufclient import TufClient

MAX_BUNDLE = 8 * 1024 * 1024 * 1024
HISTORY_MAX = 200
Health = Callable[[Path], tuple[bool, str]]


class AlreadyRefused(PolicyError):
    """The repository still offers a release this gateway already refused or rolled back
    (recorded then; not recorded again)."""


def new_update_id() -> str:
    """A random id naming one update attempt in the record, the history and its alerts."""
    return binascii.hexlify(os.urandom(6)).decode()


def trace(step: str) -> None:
    """Announce a step on stderr when MAMORI_OTA_TRACE is set (power-cut tests cut here)."""
    if os.environ.get("MAMORI_OTA_TRACE"):
        sys.stderr.write("mamori-ota-trace %s\n" % step)
        sys.stderr.flush()


def source_urls(source: str, paths: Paths) -> tuple[str, str]:
    """(metadata URL, targets URL) of an online repository or an offline directory/tar file."""
    if source.startswith(("http://", "https://")):
        base = source.rstrip("/")
        return base + "/metadata/", base + "/targets/"
    p = Path(source).resolve()
    if p.is_file():
        if paths.offline.exists():
            shutil.rmtree(paths.offline)
        paths.offline.mkdir(parents=True)
        extract_copy(p, paths.offline)
        p = paths.offline
    if not (p / "metadata").is_dir():
        raise ConfigError("is not a repository copy (no metadata/ directory)", source,
                          hint="copy REPO/metadata and REPO/targets to the stick")
    return p.joinpath("metadata").as_uri() + "/", p.joinpath("targets").as_uri() + "/"


PROVISIONED_ROOT = "provisioned-root.json"  # the root given at manufacture, kept as given


class UpdateAgent:
    """Runs one update pass for a gateway state dir (sim: slot directories + selector file)."""

    def __init__(self, state_dir: Path, board: Board, source: str = "", *,
                 ca_file: str | None = None, clock: Callable[[], float] = time.time,
                 health: Health | None = None, emit: Callable[[Event], None] | None = None,
                 boot: Any = None, max_bundle: int = MAX_BUNDLE,
                 boot_dir: Path | None = None) -> None:
        self.board = board
        self.paths = Paths(state_dir, board)
        self.source = source
        self.fetcher = Fetcher(ca_file)
        self.clock = clock
        self.slots = slot_store(self.paths, board)
        if health is not None:
            self.health: Health = health
        elif isinstance(self.slots, BlockSlots):
            block = self.slots
            self.health = lambda p: block.health(self._slot_name(p))
        else:
            self.health = default_health
        self.emit = emit
        if boot is not None:
            self.boot = boot
        elif isinstance(self.slots, BlockSlots):
            self.boot = TrybootBoot(self.paths, boot_dir or default_boot_dir())
        else:
            self.boot = SimBoot(self.paths)
        self.max_bundle = max_bundle
        self.last_check: dict[str, Any] = {}
        self._candidate: dict[str, Any] | None = None  # the release the current check saw

    def _slot_name(self, path: Path) -> str:
        for name in ("a", "b"):
            if self.paths.slot(name) == path:
                return name
        raise StateError("%s is not a slot of this board" % path)

    # ---- persistence ----------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """The persisted install record."""
        data: dict[str, Any] = read_json(self.paths.record, m.new_record())
        return data

    def _save(self, record: dict[str, Any]) -> dict[str, Any]:
        write_json(self.paths.record, record)
        trace(record["state"])
        return record

    def floors(self) -> dict[str, Any]:
        """The persisted never-go-back floors."""
        data: dict[str, Any] = read_json(self.paths.floors, new_floors())
        return data

    def current_version(self) -> str:
        """Version of the image running now ("" before the first install)."""
        info = self.slots.info(self.boot.booted())
        return str(info["version"]) if info else ""

    def _history(self, entry: dict[str, Any]) -> None:
        """Append a history entry; one with the same update id and action is written once."""
        rows = read_json(self.paths.history, [])
        if entry.get("id") and any(r.get("id") == entry["id"] and r.get("action") ==
                                   entry["action"] for r in rows if isinstance(r, dict)):
            return
        entry = dict(entry, time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock())))
        rows.append(entry)
        write_json(self.paths.history, rows[-HISTORY_MAX:])

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.paths.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError("cannot open the update lock: %s" % (exc.strerror or exc),
                             "the state directory must be writable") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StateError("another update agent is running on this state dir")
            yield
        finally:
            os.close(fd)

    # ---- provisioning ---------------------------------------------------------------------

    def trust_root(self, root: bytes) -> str:
        """Install the first trusted root metadata: ``installed``, or ``already-trusted`` when
        exactly this root was provisioned before; a different root is refused."""
        dest = self.paths.tuf / "root.json"
        first = self.paths.tuf / PROVISIONED_ROOT
        try:
            signed = strictjson.loads_object(root, "root metadata")["signed"]
            if not isinstance(signed, dict) or signed.get("_type") != "root":
                raise ValueError
        except (ValueError, KeyError, TypeError, ProtocolError):
            raise ConfigError("is not TUF root metadata", "--trust-root")
        if dest.exists():
            # root.json moves on as the repository rotates its root: compare with what was
            # provisioned (older state dirs: with the current root).
            have = first if first.is_file() else dest
            try:
                same = strictjson.loads_object(have.read_bytes(), "root metadata")["signed"] \
                    == signed
            except (OSError, ValueError, KeyError, TypeError, ProtocolError):
                raise ConfigError("trusted root is not TUF root metadata", str(have))
            if same:
                return "already-trusted"
            raise ConfigError("a different trusted root is already installed; newer roots arrive "
                              "signed through the repository (a board changes release roots "
                              "only when reflashed)", str(dest))
        self.paths.tuf.mkdir(parents=True, exist_ok=True)
        write_json_bytes(first, root)
        write_json_bytes(dest, root)
        return "installed"

    def _installed_root(self) -> None:
        """First update: trust the release root the installation bundle carried."""
        from firmware.gateway.identity.install import IDENTITY, RELEASE_ROOT_FILE

        installed = self.paths.state_dir / IDENTITY / RELEASE_ROOT_FILE
        if not (self.paths.tuf / "root.json").is_file() and installed.is_file():
            self.trust_root(installed.read_bytes())

    # ---- the pass -------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Boot, reconcile, then check/download/write/switch/trial/commit as far as possible.

        A refusal (IntegrityError, PolicyError, or storage failing under the staging area) is
        recorded before it is raised; transport failures leave the download resumable."""
        with self._locked():
            try:
                return self._pass()
            except (IntegrityError, PolicyError) as exc:
                self._record_refusal(exc)
                raise
            except OSError as exc:
                err = StateError("update storage failed: %s" % (exc.strerror or exc),
                                 "free space or repair the storage; the next run starts afresh")
                self._record_refusal(err)
                raise err from exc

    def _pass(self) -> dict[str, Any]:
        info = self.boot.boot()
        trace("boot")
        before = self.record()
        record, action = m.after_boot(before, info)
        if record is not before:
            self._save(record)
        if m.needs_settling(record):  # a final write whose follow-up steps were cut off
            settled = self._settle(record)
            if record["state"] != m.REFUSED:
                return settled
        if action == m.A_DOWNLOAD and self.source:
            action = m.A_CHECK  # resume only while the repository still offers that release
        for _ in range(12):
            if action == m.A_CHECK:
                result = self._check()
                if result is not None:
                    return result
                action = m.A_DOWNLOAD
            elif action == m.A_DOWNLOAD:
                self._download()
                action = m.A_WRITE
            elif action == m.A_WRITE:
                self._write()
                action = m.A_SWITCH
            elif action in (m.A_SWITCH, m.A_REBOOT):
                self._switch()
                info = self.boot.reboot(trial=True)
                if info is None:  # a real reboot: the next boot continues (after_boot)
                    return self._rebooting(self.record())
                trace("rebooted")
                before = self.record()
                record, action = m.after_boot(before, info)
                if record is not before:
                    self._save(record)
                    if m.needs_settling(record):
                        return self._settle(record)
            elif action == m.A_HEALTH:
                return self._trial()
        raise StateError("update did not settle", "report this: the state machine looped")

    def _check(self) -> dict[str, Any] | None:
        self._candidate = None
        if not self.source:
            return {"result": "current", "version": self.current_version(),
                    "slot": self.boot.booted(), "reason": "no update source given"}
        meta_url, targets_url = source_urls(self.source, self.paths)
        self._installed_root()
        client = TufClient(self.paths.tuf, meta_url, floors_path=self.paths.floors,
                           fetcher=self.fetcher, clock=self.clock)
        client.refresh()
        signed_at, ts_expires = client.timestamp_times()
        name = self.board.name
        path = name + "/firmware.bundle"
        info = client.target(path)
        if info is None:
            raise StateError("the repository has no release for board %s" % name,
                             "publish one with `mamori release publish --board %s`" % name)
        custom = info.unrecognized_fields.get("custom", {})
        rel = custom.get("mamori") if isinstance(custom, dict) else None
        if not isinstance(rel, dict):
            raise IntegrityError("release metadata for %s lacks Mamori release fields" % path)
        version = str(rel.get("version", ""))
        sha = info.hashes.get("sha256", "")
        self._candidate = {"path": path, "version": version, "sha256": sha}
        record = self.record()
        if record.get("state") == m.DOWNLOADING:
            if (record.get("target") or {}).get("sha256") == sha:
                return None  # an interrupted download of the release still offered: resume
            self._save(m.advance(record, m.IDLE, reason="superseded by release %s" % version))
            staging.discard(self.paths, self.slots, record.get("slot", ""))
        if rel.get("board") != name:
            raise IntegrityError("release is for board %r, this gateway is %r" % (
                rel.get("board"), name), "wrong-board image refused")
        current = self.current_version()
        floors = self.floors()
        self._not_refused_before(version, sha, current, floors)
        min_version = str(rel.get("min_version") or "")
        if decide(current, floors, version, min_version) == "current":
            raised = raise_floors(floors, signed_at=signed_at, time_bound=ts_expires)
            if raised != floors:
                write_json(self.paths.floors, raised)
            out = {"result": "current", "version": current, "slot": self.boot.booted(),
                   "reason": "already running the latest release"}
            if self._clear_resale(current):
                out["resale_cleared"] = True
            return out
        chunks = rel.get("chunks")
        chunk_size = rel.get("chunk_size")
        validate_plan(info.length, chunk_size, chunks, self.max_bundle)  # type: ignore[arg-type]
        target = {"path": path, "length": info.length, "sha256": sha, "version": version,
                  "min_version": min_version, "chunk_size": chunk_size,
                  "chunks": chunks, "changelog": rel.get("changelog", ""),
                  "released_at": rel.get("released_at", 0), "signed_at": signed_at,
                  "timestamp_expires": ts_expires,
                  "url": targets_url + "%s/%s.firmware.bundle" % (name, sha)}
        booted = self.boot.booted()
        other = "b" if booted == "a" else "a"
        staging.discard(self.paths, self.slots, other)
        self._save(m.start(self.record(), target, booted, other, current,
                           update_id=new_update_id()))
        return None

    def _not_refused_before(self, version: str, sha: str, current: str,
                            floors: dict[str, Any]) -> None:
        """A rolled-back release, or a signed release whose content was found defective, is
        never fetched again automatically."""
        if version != current and version in floors.get("failed", []):
            raise AlreadyRefused("release %s already failed its trial boot on this gateway"
                                 % version, "publish a fixed, newer release")
        record = self.record()
        target = record.get("target") or {}
        if record.get("state") == m.REFUSED and record.get("retry") is False and \
                target.get("sha256") == sha:
            raise AlreadyRefused("release %s was refused: %s" % (version, record.get("reason")),
                                 "publish a corrected, newer release")

    def _download(self) -> None:
        record = self.record()

        def progress(done: int) -> None:
            nonlocal record
            record = self._save(m.advance(record, m.DOWNLOADING, chunks_done=done))

        download(self.fetcher, record["target"], self.paths.staging,
                 int(record.get("chunks_done", 0)), progress)
        self._save(m.advance(record, m.VERIFIED))

    def _write(self) -> None:
        record = self.record()
        slot = record["slot"]
        target = record["target"]
        if slot == self.boot.booted():
            raise StateError("refusing to write the running slot")
        staging.verify_staged(self.paths.staging, target)
        trace("staged-verified")
        self.slots.write(slot, self.paths.staging, target)
        trace("slot-written")
        # Fully accepted (signed, consistent, verified, written): only now do the floors move.
        floors = self.floors()
        raised = raise_floors(floors, min_version=target.get("min_version") or "",
                              signed_at=float(target.get("signed_at") or 0),
                              time_bound=float(target.get("timestamp_expires") or 0))
        if raised != floors:
            write_json(self.paths.floors, raised)
        self._save(m.advance(record, m.WRITTEN))

    def _switch(self) -> None:
        record = self.record()
        selector = self.boot.load()
        if selector.get("trial") != record["slot"]:
            self.boot.save(m.arm_trial(selector, record["slot"]))
            trace("armed")
        if record["state"] == m.WRITTEN:
            self._save(m.advance(record, m.SWITCHED))

    def _trial(self) -> dict[str, Any]:
        record = self.record()
        ok, reason = self.health(self.paths.slot(record["slot"]))
        trace("health-done")
        if ok:
            self.boot.save(m.commit_trial(self.boot.load()))
            trace("selector-committed")
            return self._settle(self._save(m.advance(record, m.COMMITTED)))
        record = self._save(m.advance(record, m.TRIAL, reason="health check failed: " + reason))
        self.boot.save(m.cancel_trial(self.boot.load()))
        trace("selector-cancelled")
        if self.boot.reboot(trial=False) is None:  # the next boot records the rollback
            return dict(self._rebooting(record), result="rolling_back")
        return self._settle(self._save(m.advance(record, m.ROLLED_BACK)))

    def _rebooting(self, record: dict[str, Any]) -> dict[str, Any]:
        t = record.get("target") or {}
        return {"result": "rebooting", "version": t.get("version", ""),
                "slot": record.get("slot", ""), "from_version": record.get("from_version", ""),
                "reason": record.get("reason") or "rebooting into slot %s for its trial boot"
                % record.get("slot", "")}

    # ---- refusals and the steps after a final write --------------------------------------

    def _record_refusal(self, exc: MamoriError) -> None:
        try:
            self._refuse(exc)
        except OSError as failed:
            raise StateError("%s; recording the refusal failed too: %s" % (
                exc.message, failed.strerror or failed),
                "repair the update state storage (full or read-only?)") from exc

    def _refuse(self, exc: MamoriError) -> None:
        """Record a refusal (before the switch): final record, then its replayable steps."""
        record = self.record()
        state = record.get("state", m.IDLE)
        if state not in m.REFUSABLE or isinstance(exc, AlreadyRefused) or \
                m.needs_settling(record):  # owed steps are replayed next run, never dropped
            return
        target = record.get("target") if state not in m.TERMINAL else self._candidate
        reason = str(exc)
        if state == m.REFUSED and not m.needs_settling(record) and \
                record.get("reason") == reason and \
                (record.get("target") or {}).get("sha256") == (target or {}).get("sha256"):
            return  # the same refusal as last time: recorded and alerted once
        update_id = record.get("id", "") if state not in m.TERMINAL else new_update_id()
        refused = m.refuse(record, reason, target=target, update_id=update_id or
                           new_update_id(), retry=not isinstance(exc, DefectiveBundle))
        self._settle(self._save(refused))

    def _settle(self, record: dict[str, Any]) -> dict[str, Any]:
        """The steps after a final record write, each idempotent; then mark it settled."""
        state = record["state"]
        t = record.get("target") or {}
        version = str(t.get("version", ""))
        staging.discard(self.paths, self.slots)
        trace("staging-discarded")
        base = {"version": version, "id": record.get("id", ""),
                "from_version": record.get("from_version", "")}
        if state == m.COMMITTED:
            floors = self.floors()
            raised = raise_floors(floors, min_version=t.get("min_version") or "",
                                  signed_at=float(t.get("signed_at") or 0), committed=version,
                                  time_bound=float(t.get("timestamp_expires") or 0))
            if raised != floors:
                write_json(self.paths.floors, raised)
            self._history(dict(base, action="installed", slot=record["slot"],
                               changelog=t.get("changelog", ""), sha256=t.get("sha256", "")))
        elif state == m.ROLLED_BACK:
            floors = self.floors()
            if version not in floors.get("failed", []):
                write_json(self.paths.floors, mark_failed(floors, version))
            reason = record.get("reason") or "trial boot failed"
            self._history(dict(base, action="rolled_back", slot=record.get("from_slot", ""),
                               reason=reason))
            self._alert(record, "ota.rollback", "rolled_back", reason)
        else:
            reason = record.get("reason") or "refused"
            self._history(dict(base, action="refused", reason=reason,
                               sha256=t.get("sha256", "")))
            self._alert(record, "ota.refused", "refused", reason)
        self._save(m.settle(record))
        if self.emit is not None:
            outbox.forward(self.paths.reports, self.emit)
        return self._final_result(record)

    def _alert(self, record: dict[str, Any], kind: str, result: str, reason: str) -> None:
        t = record.get("target") or {}
        event_id = "ota-%s-%s" % (record["id"], result) if record.get("id") else ""
        outbox.append_once(self.paths.reports, Event(
            kind, "alert", source="ota", action="update", target=str(t.get("version", "")),
            result=result, reason=reason, ts=self.clock(), event_id=event_id,
            params={"board": self.board.name, "from_version": record.get("from_version", ""),
                    "slot": record.get("from_slot", "")}))
        trace("alerted")

    def _final_result(self, record: dict[str, Any]) -> dict[str, Any]:
        t = record.get("target") or {}
        if record["state"] == m.COMMITTED:
            out = {"result": "installed", "version": t["version"], "slot": record["slot"],
                   "from_version": record.get("from_version", ""), "reason": ""}
            if self._clear_resale(t["version"]):
                out["resale_cleared"] = True
            return out
        if record["state"] == m.ROLLED_BACK:
            return {"result": "rolled_back", "version": record.get("from_version", ""),
                    "slot": self.boot.booted(), "failed_version": t.get("version", ""),
                    "reason": record.get("reason") or "trial boot failed"}
        return {"result": "refused", "version": self.current_version(),
                "slot": self.boot.booted(), "refused_version": t.get("version", ""),
                "reason": record.get("reason", "")}

    def _clear_resale(self, version: str) -> bool:
        """R2-9: the update to the latest release succeeded, so a resold gateway may serve."""
        state = self.paths.state_dir
        if marker(state) is None:
            return False
        doc = clear_marker(state, version)
        if not doc.get("cleared"):
            return False
        self._history({"action": "resale-cleared", "version": version,
                       "reset_at": doc.get("reset_at"),
                       "reason": "updated to the latest release after a resale reset"})
        if self.emit is not None:
            self.emit(Event("ota.resale_cleared", "notice", source="ota", action="update",
                            target=version, result="service enabled",
                            reason="latest release installed after the resale reset",
                            ts=self.clock()))
        return True


def default_boot_dir() -> Path:
    """Where the Raspberry Pi boot partition (autoboot.txt) is mounted."""
    for p in (Path("/boot/firmware"), Path("/boot")):
        if (p / "autoboot.txt").is_file():
            return p
    return Path("/boot/firmware")


def write_json_bytes(path: Path, data: bytes) -> None:
    """Write raw bytes atomically (used for the trusted root)."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def refusal(exc: MamoriError) -> dict[str, Any]:
    """The --json form of a refused update."""
    return {"result": "refused", "error": exc.code, "reason": str(exc)}
