"""Device binding: a new device proves, once, that the installer meant it for this gateway.

A device's first ``hello`` may carry ``ticket`` (the site-signed installation ticket) and
``secret`` (the one-time installation secret the installer typed or scanned). A presented ticket
is always redeemed (``InstallTickets.redeem``: this gateway, this device, before expiry, once);
the device is then remembered as bound in ``binding/bound.json``. When binding is required --
the gateway's policy file ``policy/device-binding.json`` says ``{"require_ticket": true}``, or
the device's signed record says ``"binding": "ticket"`` -- a device that is not bound yet and
presents no ticket is refused. Valid credentials stay necessary in every case: binding is an
extra check after authentication, never a replacement for it.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from firmware.core import refusals as rc
from firmware.core.errors import AuthError
from firmware.gateway.identity import policies
from firmware.gateway.identity.install import write_file
from firmware.gateway.identity.tickets import InstallTickets

POLICY = policies.DIR + "/" + policies.DEVICE_BINDING
BOUND = "binding/bound.json"

Authorizer = Callable[[dict[str, Any], bytes | None], Awaitable[dict[str, Any]]]


def set_required(state_dir: Path, required: bool) -> None:
    """Write the gateway's binding policy."""
    write_file(Path(state_dir) / POLICY,
               json.dumps({"require_ticket": bool(required)}).encode(), secret=False)


class DeviceBinding:
    """Checks installation tickets in hellos and remembers bound devices."""

    def __init__(self, state_dir: Path, now: Callable[[], float] = time.time) -> None:
        self.state_dir = Path(state_dir)
        self.now = now

    def policy_requires(self) -> bool:
        """True when the gateway's policy file requires a ticket for new devices.

        A damaged or mistyped policy (unknown key, wrong type) raises ConfigError: the device
        is refused (fail closed), never admitted as if the policy were off.
        """
        return bool(policies.read(self.state_dir, policies.DEVICE_BINDING)["require_ticket"])

    def required(self, identity: dict[str, Any]) -> bool:
        """Whether this device must be bound by a ticket."""
        return identity.get("binding") == "ticket" or self.policy_requires()

    def bound(self) -> dict[str, Any]:
        """device id -> {ticket_id, at} of every bound device."""
        try:
            doc = json.loads((self.state_dir / BOUND).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return dict(doc) if isinstance(doc, dict) else {}

    def check(self, hello: dict[str, Any], identity: dict[str, Any]) -> dict[str, Any] | None:
        """Redeem a presented ticket, or refuse an unbound device where binding is required."""
        dev_id = str(identity["id"])
        ticket = hello.get("ticket")
        if ticket is not None:
            secret = hello.get("secret")
            if not isinstance(secret, str) or not secret:
                raise rc.coded(AuthError("installation ticket presented without its secret"),
                               rc.TICKET_INVALID)
            res = InstallTickets(self.state_dir, self.now).redeem(ticket, secret, dev_id)
            bound = self.bound()
            bound[dev_id] = {"ticket_id": res["ticket_id"], "at": datetime.datetime.now(
                datetime.UTC).replace(microsecond=0).isoformat()}
            write_file(self.state_dir / BOUND, json.dumps(bound, indent=2).encode(),
                       secret=False)
            return res
        if self.required(identity) and dev_id not in self.bound():
            raise rc.coded(AuthError(
                "device %s is not bound to this gateway: its first connection must present a "
                "one-time installation ticket" % dev_id[:64],
                "issue one with `mamori provision install-secret` and run the device with "
                "--ticket FILE"), rc.TICKET_REQUIRED)
        return None

    def wrap(self, authorizer: Authorizer) -> Authorizer:
        """A LAN authorizer that checks the binding after the credentials."""

        async def authorize(hello: dict[str, Any], cert: bytes | None) -> dict[str, Any]:
            ident = await authorizer(hello, cert)
            self.check(hello, ident)
            return ident

        return authorize
