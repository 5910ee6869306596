"""Trust costs: the device's own ★★★ check, and installing a CRL into a gateway with devices.

- ``threestar_command``: a device agent executing a platform-signed ``unlock`` (envelope parsed,
  Ed25519 signature, expiry, replay checked on the device) vs the same agent executing an
  ordinary ``lock`` (baseline: same frames, no check).
- ``crl_install``: a numbered CRL installed into a running gateway's revocation service with N
  registered devices (verified against the site CA, written atomically, every device's serial
  checked) vs the bare durable write of the same bytes (baseline: tmp + fsync + rename).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import best_of, pick, row
from firmware.common.fsutil import atomic_write
from firmware.core import frames
from firmware.device.credentials import load as load_credentials
from firmware.device.credentials import three_star_guard
from firmware.device.portable.agent import DeviceAgent

ROUNDS = pick(250, 50)  # a device keeps at most 256 live nonces (fail closed beyond)
DEVICES = pick(500, 20)


def _site(root: Path) -> tuple[Any, Path]:
    from firmware.gateway.identity.install import install_bundle
    from provisioning.devices import issue_device
    from provisioning.gateway import issue_gateway
    from provisioning.site import Site

    site = Site.init(root / "site", 3, "Bench")
    site.allow("Acme", "Lock1", "ip")
    issue_gateway(site, "sim", "gw", root / "gw.bundle")
    install_bundle(root / "state", root / "gw.bundle")
    issue_device(site, "ip", "Acme", "Lock1", "door", root / "door.json")
    return site, root / "state"


def _commands(root: Path, site: Any) -> list[dict[str, Any]]:
    from host_tools.platform.signing import new_envelope, sign
    from host_tools.platform.site import load_site

    creds = load_credentials(root / "door.json")
    key = load_site(site.root, need_signing_key=True).signing_key()
    envs = [sign(new_envelope("gw", "door", "unlock"), key) for _ in range(ROUNDS)]
    agent = DeviceAgent("door", kind="lock", guard=three_star_guard(creds, "gw"))
    agent.receive(frames.encode({"type": "welcome", "gateway": "gw"}), 0)
    signed = [frames.encode({"type": "cmd", "cid": str(i), "action": "unlock", "params": {},
                             "env": e}) for i, e in enumerate(envs)]
    plain = [frames.encode({"type": "cmd", "cid": str(i), "action": "lock", "params": {}})
             for i in range(ROUNDS)]

    def run(msgs: list[bytes]) -> float:
        t0 = time.perf_counter()
        for m in msgs:
            agent.receive(m, 1)
        return (time.perf_counter() - t0) / len(msgs)

    plain_s = run(plain)
    signed_s = run(signed)
    assert agent.refusals == 0, "a signed command was refused"
    return [row("threestar_command", "us/command", signed_s * 1e6, "plain_command",
                plain_s * 1e6, higher_is_better=False, rounds=ROUNDS)]


def _install(root: Path, site: Any, state: Path) -> list[dict[str, Any]]:
    from firmware.common.boards import load_board
    from firmware.gateway.devices.revocation import RevocationService
    from firmware.gateway.runtime.config import GatewayConfig
    from firmware.gateway.runtime.gateway import Gateway

    pems = []
    for _ in range(5):
        site.write_crl()
        pems.append(site.crl_pem().encode())

    async def main() -> float:
        gw = Gateway(GatewayConfig("sim", state), load_board("sim"))
        for i in range(DEVICES):
            gw.register_device("d%d" % i, "ip", 10.0, 2, serial=str(10_000 + i))
        svc = RevocationService(gw, None)
        best = float("inf")
        for pem in pems:
            t0 = time.perf_counter()
            await svc.install(pem)
            best = min(best, time.perf_counter() - t0)
        return best

    install_s = asyncio.run(main())
    target = root / "plain.pem"
    write_s = best_of(5, lambda: atomic_write(target, pems[-1], 0o644))
    return [row("crl_install", "ms", install_s * 1e3, "atomic_write_same_bytes", write_s * 1e3,
                higher_is_better=False, devices=DEVICES)]


def run() -> list[dict[str, Any]]:
    """The figures of this module."""
    with tempfile.TemporaryDirectory(prefix="mamori-bench-trust-") as d:
        root = Path(d)
        site, state = _site(root)
        return _commands(root, site) + _install(root, site, state)
