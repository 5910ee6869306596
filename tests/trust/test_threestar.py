"""★★★ end to end: the device itself checks the platform's signature (issue 14, part 4).

The device is a real `mamori-device` process. The "gateway" holding gw-1's real key is the
gateway's own LAN service code run in the test — exactly what an attacker with a copied gateway
key (or a compromised gateway) runs: it can send the device anything. Unsigned, wrongly signed,
mis-addressed, stale and replayed ★★★ commands are refused by the device; the platform's real
signed command is executed. Over the WAN, `mamori platform command` unlocks through a real
gateway and broker, and a device that cannot verify signatures gets no ★★★ command at all.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.common.boards import load_board
from firmware.core.acl import DeviceAcl
from firmware.core.command_auth import CommandAuthorizer, CommandRefused
from firmware.device.credentials import gateway_pin, three_star_guard, tls_context
from firmware.device.portable.agent import DeviceAgent
from firmware.device.runner import run_session
from firmware.gateway.devices.router import DeviceRouter
from firmware.gateway.identity.admission import DeviceAuthorizer
from firmware.gateway.identity.install import install_bundle
from firmware.gateway.lan.service import LanService
from firmware.gateway.lan.tls import server_context
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from host_tools.platform.signing import new_envelope, sign
from host_tools.platform.site import load_site
from tests.conftest import ROOT, require
from tests.gateway.helpers import stop_gateway, wait_for
from tests.trust.house import (
    House,
    creds_doc,
    device,
    device_cmd,
    make_house,
    mamori,
    start_gateway,
)


@pytest.fixture
def house(tmp_path: Path) -> House:
    h = make_house(tmp_path)
    h.device("door")
    return h


async def _until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


def test_device_refuses_what_the_platform_did_not_sign(house: House) -> None:
    install_bundle(house.state, house.bundles["gw-1"])
    key = load_site(house.site.root, need_signing_key=True).signing_key()
    attacker = Ed25519PrivateKey.generate()

    def env(action: str = "unlock", signer: Ed25519PrivateKey = key, **kw: Any) -> dict:
        gw = kw.pop("gateway", "gw-1")
        dev = kw.pop("device", "door")
        return sign(new_envelope(gw, dev, action, **kw), signer)

    async def main() -> dict[str, dict[str, Any]]:
        gw = Gateway(GatewayConfig("sim", house.state), load_board("sim"))
        lan = LanService(gw, "127.0.0.1", 0, ssl_context=server_context(house.state),
                         authorizer=DeviceAuthorizer(house.state))
        await lan.start()
        proc = await asyncio.create_subprocess_exec(
            *device_cmd(house.creds["door"], "127.0.0.1:%d" % lan.port, "--kind", "lock",
                        "--interval", "0.5"), cwd=ROOT, stderr=subprocess.PIPE)
        out: dict[str, dict[str, Any]] = {}
        try:
            await _until(lambda: "door" in lan.sessions)
            good = env()
            replay_src = env("lock")
            replay_src["action"] = "unlock"  # a signed "lock" rewritten to "unlock"
            attempts = {
                "unsigned": None,
                "attacker-signed": env(signer=attacker),
                "other-device": env(device="hall"),
                "other-gateway": env(gateway="gw-2"),
                "expired": env(now=time.time() - 600),
                "rewritten": replay_src,
                "lock-for-unlock": env("lock"),
            }
            for name, envelope in attempts.items():
                out[name] = await lan.execute("door", "unlock", {}, envelope=envelope)
            out["lock-unsigned"] = await lan.execute("door", "lock", {})
            out["signed"] = await lan.execute("door", "unlock", {}, envelope=good)
            out["replayed"] = await lan.execute("door", "unlock", {}, envelope=good)
        finally:
            proc.terminate()
            await proc.wait()
            await lan.stop()
        return out

    res = asyncio.run(main())
    refused = {"unsigned": "unsigned", "attacker-signed": "bad-signature",
               "other-device": "wrong-device", "other-gateway": "wrong-gateway",
               "expired": "expired", "rewritten": "bad-signature",
               "lock-for-unlock": "wrong-action"}
    for name, reason in refused.items():
        assert res[name]["ok"] is False, name
        assert res[name]["refused"] == reason, (name, res[name])
        assert res[name]["actual"] == {"locked": True}, name  # the door stayed shut
        assert "refused by the device" in res[name]["reason"]
    assert res["lock-unsigned"]["ok"] is True  # ordinary actions need no signature
    assert res["signed"]["ok"] is True and res["signed"]["actual"] == {"locked": False}
    assert res["replayed"]["refused"] == "replayed"


def test_platform_unlock_end_to_end_and_fail_closed(tmp_path: Path) -> None:
    require("mosquitto")
    house = make_house(tmp_path, grants=[
        {"principal": "platform", "device": d, "actions": ["lock", "unlock"]}
        for d in ("door", "blind")])
    house.device("door")
    blind = house.root / "blind-port.json"  # a device (port) that cannot verify Ed25519
    doc = creds_doc(house.device("blind", model="Lock 1"))
    doc.pop("platform_command_key")
    blind.write_text(json.dumps(doc))
    broker = house.broker(tmp_path / "broker")
    proc, endpoint = start_gateway(house.state, house.bundles["gw-1"], "--broker", broker.url)
    devs = [subprocess.Popen(device_cmd(c, endpoint, "--kind", "lock", "--interval", "0.5"),
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for c in (house.creds["door"], blind)]
    base = ["platform", "command", "--broker", broker.url, "--site", str(house.site.root),
            "--gateway", "gw-1", "--json", "--action", "unlock", "--device"]
    try:
        st = wait_for(house.state, lambda d: (d.get("wan") or {}).get("connected") is True
                      and device(d, "door").get("state") == "online"
                      and device(d, "blind").get("state") == "online")
        assert device(st, "door")["verifies"] == ["ed25519"]
        assert device(st, "blind")["verifies"] == []
        ok = mamori(*base, "door")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert json.loads(ok.stdout)["actual"] == {"locked": False}
        no = mamori(*base, "blind")
        assert no.returncode == 3
        refusal = json.loads(no.stdout.split("\n}\n")[0] + "\n}")
        assert refusal["refused"] == "cannot-verify" and refusal["actual"] is None
    finally:
        for p in devs:
            p.terminate()
            p.communicate(timeout=30)
        code, err = stop_gateway(proc)
        broker.stop()
    assert code == 0, err


def test_a_models_own_three_star_actions(house: House) -> None:
    creds = creds_doc(house.device("garage", model="Garage 1"))
    assert creds["three_star"] == ["open"]  # from the signed allowlist entry
    install_bundle(house.state, house.bundles["gw-1"])
    key = load_site(house.site.root, need_signing_key=True).signing_key()

    async def main() -> dict[str, Any]:
        gw = Gateway(GatewayConfig("sim", house.state), load_board("sim"))
        lan = LanService(gw, "127.0.0.1", 0, ssl_context=server_context(house.state),
                         authorizer=DeviceAuthorizer(house.state))
        await lan.start()
        agent = DeviceAgent("garage", kind="shutter", interval=0.5, maker="Acme",
                            model="Garage 1", guard=three_star_guard(creds, "gw-1"))
        stop = asyncio.Event()
        task = asyncio.create_task(run_session(agent, "127.0.0.1", lan.port,
                                               tls_context(creds), stop=stop,
                                               pin=gateway_pin(creds)))
        try:
            await _until(lambda: "garage" in lan.sessions)
            router = DeviceRouter(gw, {"ip": lan})
            out = {"risk": [router.high_risk("garage", a) for a in ("open", "close", "unlock")],
                   "risk-other": router.high_risk("door", "open"),
                   "open": await lan.execute("garage", "open", {}),
                   "close": await lan.execute("garage", "close", {}),
                   "signed": await lan.execute("garage", "open", {}, envelope=sign(
                       new_envelope("gw-1", "garage", "open"), key))}
            auth = CommandAuthorizer("gw-1", lambda p, s: False, time.time,
                                     DeviceAcl([{"principal": "platform", "device": "garage",
                                                 "actions": ["open", "close"]}]),
                                     high_risk=router.high_risk)
            unsigned = new_envelope("gw-1", "garage", "open")
            with pytest.raises(CommandRefused, match="unsigned"):
                auth.check(unsigned, "garage")  # the gateway's own check, same table
            out["close-ok"] = auth.check(new_envelope("gw-1", "garage", "close"), "garage")
        finally:
            stop.set()
            await task
            await lan.stop()
        return out

    res = asyncio.run(main())
    assert res["risk"] == [True, False, True] and res["risk-other"] is False
    assert res["open"]["refused"] == "unsigned" and res["open"]["actual"] == {"position": 0}
    assert res["close"]["ok"] is True
    assert res["signed"]["ok"] is True and res["signed"]["actual"] == {"position": 100}
    assert res["close-ok"]["action"] == "close"
