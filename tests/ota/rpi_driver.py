"""Subprocess driver for the Raspberry Pi power-cut test: one agent pass with the fake seams.

Usage: python -m tests.ota.rpi_driver CONFIG_JSON. The reboot seam appends its request to a
log file (fsynced) so the test can boot the fake firmware the way the request asked.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from firmware.common.boardprofile import Board
from firmware.core.errors import MamoriError
from firmware.gateway.update.agent import UpdateAgent
from firmware.gateway.update.boot import TrybootBoot
from firmware.gateway.update.store import Paths


def main() -> int:
    """Run one pass; print the result as JSON."""
    cfg = json.loads(sys.argv[1])
    board = Board.from_dict(cfg["board"])
    state = Path(cfg["state"])

    def reboot(arg: str) -> None:
        with open(cfg["reboot_log"], "a", encoding="utf-8") as f:
            f.write(json.dumps(arg) + "\n")
            f.flush()
            os.fsync(f.fileno())

    boot = TrybootBoot(Paths(state, board), Path(cfg["boot_dir"]), reboot=reboot,
                       dt_dir=Path(cfg["dt"]))
    try:
        res = UpdateAgent(state, board, cfg["source"], boot=boot).run()
    except MamoriError as exc:
        print(json.dumps({"result": "refused", "reason": str(exc)}))
        return 1
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
