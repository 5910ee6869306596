"""The gateway update agent: check, download (resumable, verify-before-write), write, switch,
trial boot, health-gated commit or automatic rollback. Every step persists before it acts.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from firmware.core.errors import ConfigError, IntegrityError, MamoriError, StateError
from firmware.core.events import Event
from firmware.core.update import machine as m
from firmware.core.update.chunks import validate_plan
from firmware.core.update.floors import decide, mark_failed, new_floors, raise_floors
from firmware.gateway.update.blockslot import BlockSlots, slot_store
from firmware.gateway.update.boot import SimBoot, TrybootBoot
from firmware.gateway.update.download import download
from firmware.gateway.update.fetch import Fetcher
from firmware.gateway.update.slots import default_health
from firmware.gateway.update.store import Paths, read_json, write_json
from firmware.gateway.update.tufclient import TufClient

MAX_BUNDLE = 8 * 1024 * 1024 * 1024
HISTORY_MAX = 200
Health = Callable[[Path], tuple[bool, str]]


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
        with tarfile.open(p) as tar:
            tar.extractall(paths.offline, filter="data")
        p = paths.offline
    if not (p / "metadata").is_dir():
        raise ConfigError("is not a repository copy (no metadata/ directory)", source,
                          hint="copy REPO/metadata and REPO/targets to the stick")
    return p.joinpath("metadata").as_uri() + "/", p.joinpath("targets").as_uri() + "/"


class UpdateAgent:
    """Runs one update pass for a gateway state dir (sim: slot directories + selector file)."""

    def __init__(self, state_dir: Path, board: dict[str, Any], source: str = "", *,
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
        rows = read_json(self.paths.history, [])
        entry = dict(entry, time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock())))
        rows.append(entry)
        write_json(self.paths.history, rows[-HISTORY_MAX:])

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StateError("another update agent is running on this state dir")
            yield
        finally:
            os.close(fd)

    # ---- provisioning ---------------------------------------------------------------------

    def trust_root(self, root: bytes) -> None:
        """Install the first trusted root metadata (refused if a different one is trusted)."""
        dest = self.paths.tuf / "root.json"
        if dest.exists():
            try:
                have = json.loads(dest.read_bytes())["signed"]["version"]
                new = json.loads(root)["signed"]["version"]
            except (ValueError, KeyError, TypeError):
                raise ConfigError("trusted root is not TUF root metadata", str(dest))
            if have >= new:
                return
            raise ConfigError("a trusted root is already installed; newer roots arrive signed "
                              "through the repository", str(dest))
        try:
            if json.loads(root)["signed"]["_type"] != "root":
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise ConfigError("is not TUF root metadata", "--trust-root")
        self.paths.tuf.mkdir(parents=True, exist_ok=True)
        write_json_bytes(dest, root)

    def _installed_root(self) -> None:
        """First update: trust the release root the installation bundle carried."""
        from firmware.gateway.identity.install import IDENTITY, RELEASE_ROOT_FILE

        installed = self.paths.state_dir / IDENTITY / RELEASE_ROOT_FILE
        if not (self.paths.tuf / "root.json").is_file() and installed.is_file():
            self.trust_root(installed.read_bytes())

    # ---- the pass -------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Boot, reconcile, then check/download/write/switch/trial/commit as far as possible."""
        with self._locked():
            info = self.boot.boot()
            trace("boot")
            before = self.record()
            record, action = m.after_boot(before, info)
            if record is not before:
                self._save(record)
                if record["state"] == m.ROLLED_BACK:
                    return self._rolled_back(record)
                if record["state"] == m.COMMITTED:
                    return self._committed(record)
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
                        if record["state"] == m.ROLLED_BACK:
                            return self._rolled_back(record)
                elif action == m.A_HEALTH:
                    return self._trial()
            raise StateError("update did not settle", "report this: the state machine looped")

    def _check(self) -> dict[str, Any] | None:
        if not self.source:
            return {"result": "current", "version": self.current_version(),
                    "slot": self.boot.booted(), "reason": "no update source given"}
        meta_url, targets_url = source_urls(self.source, self.paths)
        self._installed_root()
        client = TufClient(self.paths.tuf, meta_url, floors_path=self.paths.floors,
                           fetcher=self.fetcher, clock=self.clock)
        client.refresh()
        name = self.board["name"]
        path = name + "/firmware.bundle"
        info = client.target(path)
        if info is None:
            raise StateError("the repository has no release for board %s" % name,
                             "publish one with `mamori release publish --board %s`" % name)
        custom = info.unrecognized_fields.get("custom", {})
        rel = custom.get("mamori") if isinstance(custom, dict) else None
        if not isinstance(rel, dict):
            raise IntegrityError("release metadata for %s lacks Mamori release fields" % path)
        if rel.get("board") != name:
            raise IntegrityError("release is for board %r, this gateway is %r" % (
                rel.get("board"), name), "wrong-board image refused")
        floors = raise_floors(self.floors(), min_version=str(rel.get("min_version") or ""))
        write_json(self.paths.floors, floors)
        current = self.current_version()
        version = str(rel.get("version", ""))
        if decide(current, floors, version, str(rel.get("min_version") or "")) == "current":
            out = {"result": "current", "version": current, "slot": self.boot.booted(),
                   "reason": "already running the latest release"}
            if self._clear_resale(current):
                out["resale_cleared"] = True
            return out
        chunks = rel.get("chunks")
        chunk_size = rel.get("chunk_size")
        validate_plan(info.length, chunk_size, chunks, self.max_bundle)  # type: ignore[arg-type]
        sha = info.hashes.get("sha256", "")
        target = {"path": path, "length": info.length, "sha256": sha, "version": version,
                  "min_version": rel.get("min_version") or "", "chunk_size": chunk_size,
                  "chunks": chunks, "changelog": rel.get("changelog", ""),
                  "released_at": rel.get("released_at", 0),
                  "url": targets_url + "%s/%s.firmware.bundle" % (name, sha)}
        booted = self.boot.booted()
        other = "b" if booted == "a" else "a"
        if self.paths.staging.exists():
            self.paths.staging.unlink()
        self._save(m.start(self.record(), target, booted, other, current))
        return None

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
        if slot == self.boot.booted():
            raise StateError("refusing to write the running slot")
        self.slots.write(slot, self.paths.staging, record["target"])
        trace("slot-written")
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
            record = self._save(m.advance(record, m.COMMITTED))
            return self._committed(record)
        record = self._save(m.advance(record, m.TRIAL, reason="health check failed: " + reason))
        self.boot.save(m.cancel_trial(self.boot.load()))
        trace("selector-cancelled")
        if self.boot.reboot(trial=False) is None:  # the next boot records the rollback
            return dict(self._rebooting(record), result="rolling_back")
        record = self._save(m.advance(record, m.ROLLED_BACK))
        return self._rolled_back(record)

    def _rebooting(self, record: dict[str, Any]) -> dict[str, Any]:
        t = record.get("target") or {}
        return {"result": "rebooting", "version": t.get("version", ""),
                "slot": record.get("slot", ""), "from_version": record.get("from_version", ""),
                "reason": record.get("reason") or "rebooting into slot %s for its trial boot"
                % record.get("slot", "")}

    def _committed(self, record: dict[str, Any]) -> dict[str, Any]:
        t = record["target"]
        write_json(self.paths.floors, raise_floors(self.floors(), committed=t["version"]))
        self._history({"action": "installed", "version": t["version"],
                       "from_version": record.get("from_version", ""), "slot": record["slot"],
                       "changelog": t.get("changelog", ""), "sha256": t["sha256"]})
        if self.paths.staging.exists():
            self.paths.staging.unlink()
        out = {"result": "installed", "version": t["version"], "slot": record["slot"],
               "from_version": record.get("from_version", ""), "reason": ""}
        if self._clear_resale(t["version"]):
            out["resale_cleared"] = True
        return out

    def _clear_resale(self, version: str) -> bool:
        """R2-9: the update to the latest release succeeded, so a resold gateway may serve."""
        from firmware.gateway.owner.resale import clear_marker, marker

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

    def _rolled_back(self, record: dict[str, Any]) -> dict[str, Any]:
        t = record["target"]
        reason = record.get("reason") or "trial boot failed"
        write_json(self.paths.floors, mark_failed(self.floors(), t["version"]))
        self._history({"action": "rolled_back", "version": t["version"],
                       "from_version": record.get("from_version", ""),
                       "slot": record.get("from_slot", ""), "reason": reason})
        event = Event("ota.rollback", "alert", source="ota", action="update",
                      target=t["version"], result="rolled_back", reason=reason,
                      params={"board": self.board["name"], "from_version":
                              record.get("from_version", ""), "slot": record.get("from_slot")},
                      ts=self.clock())
        with open(self.paths.reports, "a", encoding="utf-8") as f:
            f.write(json.dumps(event.to_dict(), sort_keys=True) + "\n")
        if self.emit is not None:
            self.emit(event)
        if self.paths.staging.exists():
            self.paths.staging.unlink()
        return {"result": "rolled_back", "version": record.get("from_version", ""),
                "slot": self.boot.booted(), "failed_version": t["version"], "reason": reason}


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
