"""Boot seams: slot directories + a boot-selector file on `sim`, tryboot/autoboot.txt on a Pi."""

from __future__ import annotations

import os
import re
import struct
import subprocess
from pathlib import Path
from typing import Any

from firmware.core.errors import ConfigError, StateError
from firmware.core.update import machine
from firmware.gateway.update.blockslot import partition_numbers
from firmware.gateway.update.store import Paths, fsync_dir, read_json, write_json


class SimBoot:
    """The `sim` board's boot loader: every agent start is a boot; the selector is a JSON file."""

    def __init__(self, paths: Paths) -> None:
        self.path = paths.selector

    def load(self) -> dict[str, Any]:
        """The persisted selector (slot a by default on a fresh state dir)."""
        data: dict[str, Any] = read_json(self.path, machine.new_selector("a"))
        return data

    def save(self, selector: dict[str, Any]) -> None:
        """Persist the selector atomically."""
        write_json(self.path, selector)

    def boot(self) -> dict[str, Any]:
        """Pick the slot to run (trial slots use up one attempt), persisting before booting."""
        selector, info = machine.select_boot(self.load())
        self.save(selector)
        return info

    def reboot(self, trial: bool = True) -> dict[str, Any] | None:
        """On `sim`, rebooting is just booting again in the same process."""
        return self.boot()

    def booted(self) -> str:
        """The slot currently running."""
        return str(self.load().get("booted", "a"))


DT_BOOTLOADER = Path("/proc/device-tree/chosen/bootloader")
_ALL = re.compile(r"^\[(\w+)\]\s*$")


def autoboot_txt(default_partition: int, trial_partition: int) -> str:
    """autoboot.txt for the Raspberry Pi firmware's A/B mechanism (tryboot boots the trial once)."""
    return ("[all]\ntryboot_a_b=1\nboot_partition=%d\n[tryboot]\nboot_partition=%d\n"
            % (default_partition, trial_partition))


def parse_autoboot(text: str) -> dict[str, int]:
    """{"all": N, "tryboot": M}: the boot_partition of each section (as the firmware reads it)."""
    out: dict[str, int] = {}
    section = "all"
    for line in text.splitlines():
        line = line.strip()
        m = _ALL.match(line)
        if m:
            section = m.group(1)
            continue
        if line.startswith("boot_partition="):
            try:
                out[section] = int(line.split("=", 1)[1])
            except ValueError:
                raise ConfigError("autoboot.txt has a malformed boot_partition", line)
    if "all" not in out:
        raise ConfigError("autoboot.txt names no boot_partition in [all]",
                          hint="restore it: [all] tryboot_a_b=1 boot_partition=2")
    return out


def system_reboot(arg: str) -> None:
    """Ask systemd to reboot; "0 tryboot" makes the firmware boot the [tryboot] partition once."""
    subprocess.run(["reboot", arg] if arg else ["reboot"], check=False)


class TrybootBoot:
    """Raspberry Pi tryboot: autoboot.txt on the boot partition is the truth about what boots.

    Commit = rewrite autoboot.txt atomically with the trial slot under [all]; a trial is
    ``reboot "0 tryboot"`` (the firmware boots the [tryboot] partition once, then [all] again).
    The firmware reports the booted partition and the tryboot flag in the device tree. The
    agent's bookkeeping (trial armed, attempts left) is mirrored in update/boot.json.
    """

    def __init__(self, paths: Paths, boot_dir: Path, reboot: Any = None,
                 dt_dir: Path = DT_BOOTLOADER,
                 partitions: dict[str, int] | None = None) -> None:
        self.state = paths.selector
        self.boot_dir = boot_dir
        self.dt_dir = dt_dir
        self.partitions = partitions or partition_numbers(paths.slot_paths)
        self._reboot = reboot or system_reboot

    # -- autoboot.txt ------------------------------------------------------------------------
    def _slot_of(self, partition: int) -> str:
        for name, num in self.partitions.items():
            if num == partition:
                return name
        raise StateError("partition %d is not one of this board's slots" % partition,
                         "autoboot.txt or the slot table is wrong")

    def read_autoboot(self) -> dict[str, int]:
        """The parsed autoboot.txt."""
        try:
            return parse_autoboot((self.boot_dir / "autoboot.txt").read_text())
        except OSError as exc:
            raise ConfigError("cannot read autoboot.txt: %s" % exc.strerror, str(self.boot_dir),
                              hint="mount the boot partition (default /boot/firmware)")

    def write_autoboot(self, default_slot: str, trial_slot: str) -> None:
        """Rewrite autoboot.txt atomically: temp file, fsync, rename, fsync the directory."""
        text = autoboot_txt(self.partitions[default_slot], self.partitions[trial_slot])
        dest = self.boot_dir / "autoboot.txt"
        try:
            if dest.read_text() == text:
                return
        except OSError:
            pass
        tmp = self.boot_dir / "autoboot.tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
        try:
            fsync_dir(self.boot_dir)
        except OSError:
            pass  # some FAT drivers refuse a directory fsync; the rename is already issued

    # -- selector interface used by the agent -------------------------------------------------
    def load(self) -> dict[str, Any]:
        """The selector: default from autoboot.txt, trial bookkeeping from boot.json."""
        default = self._slot_of(self.read_autoboot()["all"])
        sel: dict[str, Any] = read_json(self.state, None) or machine.new_selector(default)
        sel = dict(sel, default=default)
        if sel.get("trial") == default:  # committed, bookkeeping not yet updated
            sel.update(trial="", attempts_left=0, requested=False)
        return sel

    def save(self, selector: dict[str, Any]) -> None:
        """autoboot.txt first (the truth), then the bookkeeping."""
        default = selector["default"]
        other = "b" if default == "a" else "a"
        self.write_autoboot(default, selector.get("trial") or other)
        write_json(self.state, selector)

    def _dt(self, name: str) -> int | None:
        try:
            raw = (self.dt_dir / name).read_bytes()
        except OSError:
            return None
        return struct.unpack(">I", raw[:4])[0] if len(raw) >= 4 else None

    def boot(self) -> dict[str, Any]:
        """What the firmware booted: partition and tryboot flag from the device tree."""
        sel = self.load()
        part = self._dt("partition")
        booted = self._slot_of(part) if part is not None else sel["default"]
        flag = bool(self._dt("tryboot"))
        trial = sel.get("trial", "")
        in_trial = bool(flag and trial and booted == trial)
        exhausted = pending = False
        if trial and not in_trial:
            if int(sel.get("attempts_left", 0)) > 0:
                pending = True  # armed, the trial boot has not happened (or may be retried)
            else:
                exhausted = True  # every trial boot ended without a commit
                sel.update(trial="", requested=False)
        sel.update(booted=booted, in_trial=in_trial)
        write_json(self.state, sel)
        return {"slot": booted, "in_trial": in_trial, "exhausted": exhausted,
                "pending_trial": pending}

    def reboot(self, trial: bool = True) -> dict[str, Any] | None:
        """Request the reboot (one trial boot uses one attempt); returns None: this boot ends."""
        if trial:
            sel = self.load()
            sel["attempts_left"] = max(0, int(sel.get("attempts_left", 0)) - 1)
            sel["requested"] = True
            write_json(self.state, sel)
        self._reboot("0 tryboot" if trial else "")
        return None

    def booted(self) -> str:
        """The slot running now."""
        part = self._dt("partition")
        if part is not None:
            return self._slot_of(part)
        return str(self.load().get("booted") or self.load()["default"])
