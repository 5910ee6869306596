"""Boot seams: slot directories + a boot-selector file on `sim`, tryboot/autoboot.txt on a Pi."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.core.errors import StateError
from firmware.core.update import machine
from firmware.gateway.update.store import Paths, read_json, write_json


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

    def reboot(self) -> dict[str, Any]:
        """On `sim`, rebooting is just booting again in the same process."""
        return self.boot()

    def booted(self) -> str:
        """The slot currently running."""
        return str(self.load().get("booted", "a"))


def autoboot_txt(default_partition: int, trial_partition: int) -> str:
    """autoboot.txt for the Raspberry Pi firmware's A/B mechanism (tryboot boots the trial once)."""
    return ("[all]\ntryboot_a_b=1\nboot_partition=%d\n[tryboot]\nboot_partition=%d\n"
            % (default_partition, trial_partition))


class TrybootBoot:
    """Raspberry Pi: commit = rewrite autoboot.txt; trial = `reboot "0 tryboot"` (one shot)."""

    def __init__(self, boot_dir: Path, partitions: dict[str, int], paths: Paths,
                 run: Callable[[list[str]], Any] = subprocess.run,
                 tryboot_flag: Path = Path("/proc/device-tree/chosen/bootloader/tryboot")) -> None:
        self.boot_dir = boot_dir
        self.partitions = partitions
        self.sim = SimBoot(paths)
        self.run = run
        self.flag = tryboot_flag

    def write_autoboot(self, default_slot: str, trial_slot: str) -> None:
        """Write autoboot.txt atomically on the boot partition."""
        text = autoboot_txt(self.partitions[default_slot], self.partitions[trial_slot])
        tmp = self.boot_dir / "autoboot.txt.tmp"
        tmp.write_text(text)
        tmp.replace(self.boot_dir / "autoboot.txt")

    def save(self, selector: dict[str, Any]) -> None:
        """Persist the selector and mirror it into autoboot.txt."""
        other = "b" if selector["default"] == "a" else "a"
        self.write_autoboot(selector["default"], selector.get("trial") or other)
        self.sim.save(selector)

    def load(self) -> dict[str, Any]:
        """The persisted selector."""
        return self.sim.load()

    def boot(self) -> dict[str, Any]:
        """Read what the firmware booted: a tryboot flag means this is the trial boot."""
        try:
            in_trial = self.flag.read_bytes()[:4] != b"\0\0\0\0"
        except OSError:
            in_trial = False
        selector = self.load()
        if selector.get("trial") and not in_trial:
            # The one-shot tryboot is over (watchdog or power cut): the firmware fell back.
            selector, info = machine.select_boot(dict(selector, attempts_left=0))
        else:
            selector, info = machine.select_boot(selector)
        self.sim.save(selector)
        return info

    def reboot(self) -> dict[str, Any]:
        """Reboot into the trial partition once; this process ends here on real hardware."""
        self.run(["reboot", "0 tryboot"])
        raise StateError("rebooting into the trial slot")

    def booted(self) -> str:
        """The slot currently running."""
        return self.sim.booted()
