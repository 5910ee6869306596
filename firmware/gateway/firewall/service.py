"""Gateway service: apply the firewall at start, re-check it periodically, alert on drift."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from firmware.common.ports import ADMIN_HTTPS_PORT, LAN_DEVICE_PORT
from firmware.core.errors import MamoriError, StateError
from firmware.core.events import Event
from firmware.gateway.firewall import nft, posture
from firmware.gateway.firewall.policy import policy_for_board
from firmware.gateway.firewall.ruleset import FAMILY, TABLE, Ruleset, build
from firmware.gateway.runtime.gateway import Gateway, Service

log = logging.getLogger("mamori.gateway.firewall")

DEFAULT_INTERVAL = 60.0
NO_CAP = "not applied (no CAP_NET_ADMIN)"
SIM_NO_NETNS = "not applied (sim board: no firewall_netns configured)"


class FirewallService(Service):
    """Owns table `inet mamori`: atomic apply, periodic semantic check, listener allowlist."""

    name = "firewall"

    def __init__(self, gw: Gateway, interval: float | None = None, netns: str | None = None,
                 reapply_on_drift: bool = True) -> None:
        super().__init__(gw)
        cfg = gw.config.firewall
        self.interval = float(interval if interval is not None else cfg.interval)
        self.netns = netns if netns is not None else cfg.netns
        self.reapply_on_drift = reapply_on_drift
        lan_port = gw.config.lan_port or LAN_DEVICE_PORT
        self.ruleset: Ruleset = build(policy_for_board(
            gw.board, device_port=lan_port,
            admin_port=gw.config.admin.port or ADMIN_HTTPS_PORT))
        self.state = "starting"
        self.applied = False
        self.checks = 0
        self.last_check = 0.0
        self.drift: list[dict] = []
        self.unexpected: list[dict] = []
        self.foreign: list[dict] = []
        self.error = ""
        self._last_sig = ""
        self._last_foreign = ""
        self._last_listeners = ""
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Apply the ruleset (or report why it cannot be), then start the periodic check."""
        is_sim = self.gw.board.is_sim
        if not nft.has_cap_net_admin():
            if not is_sim:
                raise StateError("cannot apply the firewall: " + NO_CAP,
                                 "run the gateway as root or grant it CAP_NET_ADMIN")
            self.state = NO_CAP
            return
        if is_sim and not self.netns:
            # The sim board's interfaces are the host's loopback: never firewall the host.
            self.state = SIM_NO_NETNS
            return
        await asyncio.to_thread(posture.apply, self.ruleset, self.netns)
        self.applied = True
        self.state = "applied"
        self.gw.emit(Event("firewall.applied", "notice", action="apply",
                           target=f"{FAMILY} {TABLE}", result="ok",
                           params={"digest": self.ruleset.digest(), "netns": self.netns or ""}))
        await self.check_once()
        self._task = self.gw.spawn("firewall.check", self._loop)

    async def stop(self) -> None:
        """Stop checking; the ruleset stays loaded (the posture outlives the process)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check_once()
            except MamoriError as exc:
                self.error = str(exc)
                log.warning("firewall check failed: %s", exc)

    async def check_once(self) -> dict:
        """One check of ruleset and listeners; emits alerts on new drift, re-applies if set."""
        result = await asyncio.to_thread(posture.check, self.ruleset, self.netns)
        self.checks += 1
        self.last_check = time.time()
        self.error = ""
        rs = result["ruleset"]
        self.drift = rs["drift"]
        target = f"{FAMILY} {TABLE}"
        self._foreign(rs.get("foreign_hooks", []))
        if not self.drift:
            self._last_sig = ""
            self.state = "applied"
        else:
            self.state = "drift"
            sig = repr(self.drift)
            if sig != self._last_sig:
                self._last_sig = sig
                self.gw.emit(Event(
                    "firewall.drift", "alert", action="check", target=target, result="drift",
                    reason=f"{len(self.drift)} difference(s) from the expected ruleset",
                    params={"changes": [_short(d) for d in self.drift[:20]],
                            "digest": self.ruleset.digest()}))
            if self.reapply_on_drift:
                await asyncio.to_thread(posture.apply, self.ruleset, self.netns)
                again = await asyncio.to_thread(posture.check_ruleset, self.ruleset, self.netns)
                if not again["drift"]:
                    self.state = "applied (restored after drift)"
                    self._last_sig = ""
                    self.gw.emit(Event("firewall.restored", "notice", action="apply",
                                       target=target, result="ok"))
        if self.foreign:
            self.state = "foreign table(s) on our hooks"
        ls = result["listeners"]
        self.unexpected = ls["unexpected"]
        lsig = repr(self.unexpected)
        if self.unexpected and lsig != self._last_listeners:
            self.gw.emit(Event(
                "firewall.listener", "alert", action="check", target="listeners",
                result="unexpected",
                reason="listener(s) not in the allowlist: "
                + ", ".join("{}@{}".format(u["key"], u["address"]) for u in self.unexpected[:10]),
                params={"unexpected": self.unexpected[:20], "allowed": ls["allowed"]}))
        self._last_listeners = lsig if self.unexpected else ""
        return result

    def _foreign(self, hooked: list[dict]) -> None:
        # Re-applying our table cannot remove another table: alert once per new set of them.
        self.foreign = hooked
        sig = repr(hooked)
        if hooked and sig != self._last_foreign:
            self.gw.emit(Event(
                "firewall.foreign", "alert", action="check", target=f"{FAMILY} {TABLE}",
                result="foreign",
                reason="foreign nftables table(s) hook our chains: "
                + ", ".join(sorted({h["table"] + " " + h["change"] for h in hooked})),
                params={"chains": hooked[:20]}))
        self._last_foreign = sig if hooked else ""

    def status(self) -> dict[str, Any]:
        """Shown under 'firewall' in `mamori-gateway status --json`."""
        return {
            "state": self.state, "applied": self.applied, "table": f"{FAMILY} {TABLE}",
            "digest": self.ruleset.digest(), "netns": self.netns or "",
            "checks": self.checks, "last_check": self.last_check,
            "interval": self.interval, "drift": len(self.drift),
            "foreign_hooks": sorted({h["table"] + " " + h["change"] for h in self.foreign}),
            "unexpected_listeners": [u["key"] + "@" + u["address"] for u in self.unexpected],
            "allowed_ports": [p.key for p in self.ruleset.policy.ports],
            "error": self.error,
        }


def _short(d: dict) -> str:
    if d["what"] == "rule":
        comment = d["rule"]["comment"] or "(no comment)"
        return "{} rule {}: {}".format(d["name"], d["change"], comment)
    return "{} {} {}".format(d["what"], d["name"], d["change"])
