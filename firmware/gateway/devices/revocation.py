"""Revocation in the running gateway: install CRLs, cut revoked devices off, watch freshness.

``RevocationService`` (status key ``crl``) is where a new site CRL lands, from the platform
(WAN ``crl`` push, through ``install``) or from an operator (control command ``crl.install``,
used by ``mamori-gateway crl install``). An accepted CRL is written atomically
(``identity/crl.py``); then every known device whose certificate or record serial is on it has
its open session closed on its transport (IP, BLE, Zigbee: ``DeviceRouter.close_device``), is
marked ``removed`` with the reason ``revoked``, and is recorded as a ``device.revoked`` alert
(access log and alert uplink). It cannot come back: each channel checks the serial at
admission against the same file. A sweep every ``tick`` seconds catches a device admitted
while the list was being replaced.

Freshness (``firmware.core.crlstate``): ``crl.aging`` once past 80 % of the list's lifetime,
then, past its next update, a critical ``crl.stale`` that repeats hourly. A stale list is never
fatal: what it lists stays refused, every other device keeps working.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from firmware.common.crl import CrlInfo
from firmware.core.crlstate import STALE_REPEAT, FreshnessAlarm, crl_state
from firmware.core.errors import ConfigError, IntegrityError, MamoriError
from firmware.core.events import Event
from firmware.core.liveness import REMOVED
from firmware.gateway.devices.router import DeviceRouter
from firmware.gateway.identity.crl import INSTALLED, Installed, Revocation, check_new, install_crl
from firmware.gateway.runtime.control import ControlService
from firmware.gateway.runtime.gateway import Gateway, Service

REVOKED = "revoked"


class RevocationService(Service):
    """Installs CRLs into the running gateway and enforces them on every open session."""

    name = "crl"

    def __init__(self, gw: Gateway, router: DeviceRouter | None = None,
                 control: ControlService | None = None, tick: float = 1.0,
                 repeat: float = STALE_REPEAT) -> None:
        super().__init__(gw)
        self.router = router
        self.tick = tick
        self.alarm = FreshnessAlarm(repeat)
        self.revocation = Revocation(gw.state_dir)
        self.installs = 0
        self.refused = 0
        self.revoked_devices = 0
        self.error = ""
        self.last: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        if control is not None:
            control.register("crl.install", self._install_command)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Enforce the installed list on what is registered, then watch it."""
        self._evaluate()
        self.gw.spawn("crl.watch", self._watch)

    async def stop(self) -> None:
        """Stop watching (the supervisor cancels the task)."""
        await self.gw.supervisor.cancel("crl.watch")

    def status(self) -> dict[str, Any]:
        """Number, dates and state (fresh, aging, stale) of the installed CRL."""
        try:
            info = self.revocation.info()
        except (MamoriError, OSError) as exc:
            return {"state": "unusable", "error": str(exc)[:200]}
        out: dict[str, Any] = dict(info.summary())
        out.update(state=crl_state(info.this_update.timestamp(), info.next_update.timestamp(),
                                   time.time()),
                   installs=self.installs, refused=self.refused,
                   revoked_devices=self.revoked_devices)
        if self.last:
            out["last_install"] = self.last
        return out

    # -- installing ------------------------------------------------------------------------
    async def install(self, pem: bytes, source: str = "platform") -> dict[str, Any]:
        """Install a new CRL (IntegrityError when refused); return the answer with closed ids."""
        async with self._lock:
            try:
                check_new(self.gw.state_dir, pem)  # refuse before touching the disk
                result: Installed = await asyncio.to_thread(install_crl, self.gw.state_dir, pem)
            except IntegrityError as exc:
                self.refused += 1
                self.gw.emit(Event("crl.refused", "warning", "crl", principal=source,
                                   action="install", target="crl", result="refused",
                                   reason=exc.message))
                raise
            answer: dict[str, Any] = dict(result.answer())
            if result.status == INSTALLED:
                self.installs += 1
                self.alarm = FreshnessAlarm(self.alarm.repeat)
                self.gw.emit(Event("crl.installed", "notice", "crl", principal=source,
                                   action="install", target="crl", result="installed",
                                   params=result.info.summary()))
            answer["revoked_devices"] = self._enforce(result.info)
            self.last = dict(answer, source=source, at=time.time())
            return answer

    async def _install_command(self, params: dict[str, Any]) -> dict[str, Any]:
        pem = params.get("crl")
        if not isinstance(pem, str) or not pem:
            raise ConfigError("crl.install needs the CRL as PEM text", field="crl")
        return await self.install(pem.encode(), source="operator")

    # -- enforcing -----------------------------------------------------------------------
    def _enforce(self, info: CrlInfo) -> list[str]:
        """Cut off every registered device whose serial is on the list; their ids."""
        done = []
        for dev_id, dev in list(self.gw.liveness.devices.items()):
            serial = str(self.gw.device_info.get(dev_id, {}).get("serial") or "")
            if not serial.isdigit() or int(serial) not in info.serials:
                continue
            if dev.state == REMOVED and dev.reason == REVOKED:
                continue
            closed = self.router.close_device(dev_id, REVOKED) if self.router else []
            self.gw.remove_device(dev_id, REVOKED)
            self.revoked_devices += 1
            done.append(dev_id)
            self.gw.emit(Event("device.revoked", "alert", "crl", principal=dev_id,
                               action="revoke", target=dev_id, result="removed",
                               reason="certificate serial %s is on CRL %d" % (serial,
                                                                               info.number),
                               params={"serial": serial, "crl_number": info.number,
                                       "closed": closed}))
        return done

    def _evaluate(self) -> None:
        try:
            info = self.revocation.info()
        except (MamoriError, OSError) as exc:
            if self.error != str(exc):
                self.error = str(exc)
                self.gw.emit(Event("crl.unusable", "critical", "crl", action="check",
                                   target="crl", result="unusable", reason=self.error[:200]))
            return
        self.error = ""
        self._enforce(info)
        for kind, severity, reason in self.alarm.tick(
                info.number, info.this_update.timestamp(), info.next_update.timestamp(),
                time.time(), time.monotonic()):
            self.gw.emit(Event(kind, severity, "crl", action="check", target="crl",
                               result=kind.split(".")[1], reason=reason,
                               params=info.summary()))

    async def _watch(self) -> None:
        while True:
            self._evaluate()
            await asyncio.sleep(self.tick)
