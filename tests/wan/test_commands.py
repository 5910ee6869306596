"""Platform commands end to end through a real Mosquitto: signed, checked, executed, reported."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.core.events import Event
from firmware.gateway.wan import topics
from host_tools.cli.main import main as mamori
from host_tools.platform.client import PlatformClient
from host_tools.platform.signing import new_envelope, sign
from tests.wan.conftest import identity, platform_site
from tests.wan.gwharness import Door, run_gateway
from tests.wan.helpers import wait
from tests.wan.pki import World


def _platform(world: World, broker) -> PlatformClient:
    p = PlatformClient(platform_site(world), "mqtts://localhost:%d" % broker.port)
    p.connect()
    return p


def _env(world: World, action: str = "unlock", device: str = "door-1", **kw: Any) -> dict:
    kw.setdefault("requested_by", "operator-7")
    kw.setdefault("approved_by", "supervisor-2")
    return sign(new_envelope(kw.pop("gateway", "gw-1"), device, action, **kw), world.sign_key)


def test_signed_unlock_and_every_bad_variant(world: World, broker, tmp_path: Path) -> None:
    door = Door()
    p = _platform(world, broker)

    def steps(gw, svc) -> dict[str, Any]:
        assert wait(lambda: svc.client.connected), svc.client.last_error
        out: dict[str, Any] = {}
        good = _env(world)
        out["ok"] = p.command(good)
        out["replayed"] = p.command(good)
        forged = sign(new_envelope("gw-1", "door-1", "unlock"), Ed25519PrivateKey.generate())
        out["forged"] = p.command(forged)
        tampered = dict(_env(world, "lock"))
        tampered["action"] = "unlock"
        out["tampered"] = p.command(tampered)
        out["expired"] = p.command(_env(world, now=time.time() - 3600))
        out["unsigned"] = p.command(new_envelope("gw-1", "door-1", "unlock"))
        wrong_gw = _env(world, gateway="gw-2")
        p.publish(topics.command("gw-1", "door-1"), wrong_gw)
        out["wrong_gateway"] = p.wait_for(
            lambda m: m.get("body", {}).get("command_id") == wrong_gw["id"], 15)[0]["body"]
        moved = _env(world, device="door-1")
        p.publish(topics.command("gw-1", "door-2"), moved)
        out["wrong_device"] = p.wait_for(
            lambda m: m.get("body", {}).get("command_id") == moved["id"], 15)[0]["body"]
        out["acl"] = p.command(_env(world, device="garage"))
        out["alerts"] = p.wait_for(lambda m: m["type"] == "alerts"
                                   and m["body"]["kind"] == "command.refused", 15, count=8)
        return out

    try:
        out = run_gateway(identity(world, broker.port), tmp_path / "state", steps,
                          execute=door.execute)
    finally:
        p.close()
    ok = out["ok"]
    assert ok["ok"] and ok["commanded"] == "unlock" and ok["actual"] == "unlocked"
    assert ok["requested_by"] == "operator-7" and ok["approved_by"] == "supervisor-2"
    expected = {"replayed": "replayed", "forged": "bad-signature", "tampered": "bad-signature",
                "expired": "expired", "unsigned": "unsigned", "wrong_gateway": "wrong-gateway",
                "wrong_device": "wrong-device", "acl": "acl"}
    for name, reason in expected.items():
        assert out[name] is not None, name
        assert out[name]["ok"] is False and out[name]["refused"] == reason, (name, out[name])
    assert door.calls == [("door-1", "unlock")]  # only the genuine command touched the door
    # every refusal was logged and reported as an alert, with its reason
    reasons = {a["body"]["reason"].split(":")[0] for a in out["alerts"]}
    assert reasons == set(expected.values()), reasons


def test_local_operation_has_priority(world: World, broker, tmp_path: Path) -> None:
    door = Door()
    p = _platform(world, broker)

    def steps(gw, svc) -> tuple[Any, Any]:
        assert wait(lambda: svc.client.connected)
        gw.emit(Event("device.local_operation", "notice", "device", principal="resident",
                      action="lock", target="door-1", result="done"))
        refused = p.command(_env(world))
        same = p.command(_env(world, "lock"))
        return refused, same

    try:
        refused, same = run_gateway(identity(world, broker.port), tmp_path / "s", steps,
                                    execute=door.execute)
    finally:
        p.close()
    assert refused["refused"] == "local-priority" and "lock by resident" in refused["reason"]
    assert same["ok"] and door.calls == [("door-1", "lock")]


def test_replay_refused_after_gateway_restart(world: World, broker, tmp_path: Path) -> None:
    p = _platform(world, broker)
    env = _env(world)

    def once(gw, svc) -> Any:
        assert wait(lambda: svc.client.connected)
        return p.command(env)

    try:
        first = run_gateway(identity(world, broker.port), tmp_path / "s", once)
        second = run_gateway(identity(world, broker.port), tmp_path / "s", once)
    finally:
        p.close()
    assert first["ok"]
    assert second["refused"] == "replayed"  # nonces persist with the queue


def test_cli_command_watch_and_requests(world: World, broker, tmp_path: Path,
                                        capsys) -> None:
    site = str(platform_site(world).root)
    url = "mqtts://localhost:%d" % broker.port
    base = ["--broker", url, "--site", site, "--gateway", "gw-1"]

    def steps(gw, svc) -> list[int]:
        assert wait(lambda: svc.client.connected)
        codes = [mamori(["platform", "command", *base, "--device", "door-1",
                         "--action", "unlock", "--json"])]
        codes.append(mamori(["platform", "command", *base, "--device", "garage",
                             "--action", "unlock"]))
        codes.append(mamori(["platform", "log-request", *base, "--json"]))
        codes.append(mamori(["platform", "log-request", *base]))
        gw.emit(Event("intrusion.detected", "alert", "device", target="door-1"))
        codes.append(mamori(["platform", "watch", "--broker", url, "--site", site,
                             "--json", "--count", "1", "--duration", "20"]))
        return codes

    codes = run_gateway(identity(world, broker.port), tmp_path / "s", steps)
    out = capsys.readouterr()
    assert codes == [0, 3, 0, 0, 0], out
    first = json.loads(out.out[:out.out.index("\n}\n") + 2])
    assert first["ok"] and first["actual"] == "unlocked"
    assert "refused: acl" in out.out or "acl" in out.err
    assert "log_req" in out.out or "accepted" in out.out
    assert out.out.strip().splitlines()[-1].startswith("{")  # the watched message (JSON line)


def test_no_broker_listening_says_so(world: World, capsys) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = mamori(["platform", "watch", "--broker", "mqtts://127.0.0.1:%d" % port, "--site",
                   str(platform_site(world).root), "--count", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "nothing listens at 127.0.0.1:%d" % port in err, err
    assert "mamori-gateway status" in err and "ConnectionRefusedError" not in err
