"""Where the gateway being commissioned is: its state directory on this machine (`--target`).

The sim board, a board's SD card or a board reached over a shell share one shape: the gateway's
state directory is a path here, its running process answers on the control socket in it
(root or the gateway's own user only). Through it the installer's tool installs the bundle
(into the running blank gateway, or into the directory when none runs), reads the status,
makes the first-use credential change and runs the live commissioning self-test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware.core.errors import StateError


class StateDirTarget:
    """A gateway whose state directory is reachable as a path."""

    def __init__(self, state_dir: Path, board: str) -> None:
        from firmware.gateway.runtime.statedir import resolve

        self.state_dir = resolve(Path(state_dir)).resolve()
        self.board = board

    def local_state_dir(self) -> Path | None:
        """The gateway's state directory when it is on this machine, else None."""
        return self.state_dir

    def describe(self) -> str:
        """What the summary calls it."""
        return "state directory %s" % self.state_dir

    def start_hint(self) -> str:
        """How the installer starts the gateway when it does not run."""
        return "mamori-gateway run --board %s --state-dir %s" % (self.board, self.state_dir)

    def status(self) -> dict[str, Any] | None:
        """The running gateway's status, None when no gateway runs there."""
        from firmware.gateway.cli.status import read_status

        try:
            doc = read_status(self.state_dir)
        except StateError:
            return None
        return doc if doc["gateway"].get("running") else None

    def attach(self, bundle: Path) -> None:
        """Nothing to learn from the bundle: the state directory says who is installed."""

    def install(self, bundle: Path) -> str:
        """Install the bundle: into the running blank gateway, else into the directory."""
        from firmware.common.boards import load_board
        from firmware.gateway.identity.install import install_bundle, installed_identity
        from firmware.gateway.runtime.control import request

        bundle = Path(bundle).resolve()
        try:
            meta = installed_identity(self.state_dir)
        except StateError:
            meta = None
        want = _bundle_id(bundle)
        running = self.status()
        if meta is not None:
            if meta["gateway_id"] != want:
                raise StateError("%s already holds gateway %s, not %s" % (
                    self.state_dir, meta["gateway_id"], want),
                    "reset that gateway (`mamori-gateway reset --resale`) or use its id")
            if running is not None and not running["gateway"].get("id"):
                # It started blank just before the bundle landed in its directory.
                request(self.state_dir, "install", {"bundle": str(bundle)})
                return "installed; the blank gateway restarts with it"
            return "already installed (gateway %s)" % want
        if running is not None:
            res = request(self.state_dir, "install", {"bundle": str(bundle)})
            return "installed into the running gateway (%s); it restarts its services" \
                % res["gateway_id"]
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        install_bundle(self.state_dir, bundle, load_board(self.board))
        return "installed into %s (no gateway runs there yet)" % self.state_dir

    def change_credential(self, credential: Path, gateway: str) -> str:
        """The first-use change of the admin credential, in the state directory."""
        from host_tools.commission.credential import change_on_state_dir, first_use_change

        change, current = change_on_state_dir(self.state_dir)
        return first_use_change(credential, gateway, change, current)

    def commission(self, level: int) -> dict[str, Any]:
        """Run the live commissioning self-test on the gateway; the signed report and the
        public key that verifies it."""
        from firmware.gateway.selftest.commissioning import DIR, PUBLIC_KEY, commission

        out = commission(self.state_dir, self.board, level)
        return {"envelope": out["envelope"], "entry": out["entry"],
                "public_key": (self.state_dir / DIR / PUBLIC_KEY).read_bytes(),
                "stored_on_gateway": out["path"]}


def _bundle_id(bundle: Path) -> str:
    from host_tools.commission.issue import bundle_gateway

    return str(bundle_gateway(bundle)["gateway_id"])
