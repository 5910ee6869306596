"""Wireless links: every active link encrypted and authenticated (SR3-H-5, C9, UK5).

Three parts: the running status (``run/status.json``) of every BLE / Zigbee device must report
an authenticated, encrypted mode; the BLE channel (``ble/channel.py``), exercised in-process over
its loopback transport with the gateway's installed key (scratch copy), must refuse legacy
pairing, a replayed handshake message and a replayed data frame; the Zigbee application
(``zigbee/app.py``) must hold a non-default trust-centre key, refuse to run with the public
default key, and refuse joins with that key or outside a join window.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

from cryptography.hazmat.primitives.asymmetric import x25519

from firmware.common.ble.noise import NoiseIK, public_bytes
from firmware.core import blelink
from firmware.core.errors import ConfigError, MamoriError, ProtocolError
from firmware.gateway.ble.channel import PROLOGUE, BleSession, GatewayBle, LoopbackTransport
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check, failed, inconclusive, passed
from firmware.gateway.selftest.scratchgw import ScratchGateway

STATUS_FILE = "run/status.json"
ENCRYPTED_MODES = {"ble": ("noise-ik", "noise-ik-chachapoly"),
                   "zigbee": ("install-code-link-key",)}
LEGACY = "legacy-just-works"


def _status(ctx: CheckContext) -> dict[str, Any]:
    try:
        data = json.loads((ctx.live_state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def link_problems(status: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, evidence) for the wireless devices of a status document."""
    problems, seen = [], []
    for d in status.get("devices") or []:
        if not isinstance(d, dict) or d.get("transport") not in ENCRYPTED_MODES:
            continue
        if d.get("state") == "removed":
            continue
        name = f"{d.get('transport')} device {d.get('id', '?')}"
        bad = []
        if d.get("encrypted") is not True:
            bad.append("not encrypted")
        if d.get("authenticated") is not True:
            bad.append("not authenticated")
        if d.get("mode") not in ENCRYPTED_MODES[str(d["transport"])]:
            bad.append(f"mode {d.get('mode')!r}")
        if d["transport"] == "ble" and d.get("pairing", blelink.SECURE_PAIRING) != \
                blelink.SECURE_PAIRING:
            bad.append(f"pairing {d.get('pairing')!r}")
        if bad:
            problems.append(f"{name}: " + ", ".join(bad))
        else:
            seen.append(f"{name}: {d.get('mode')}")
    zb = status.get("zigbee")
    if isinstance(zb, dict) and zb.get("state") == "up" and zb.get("encrypted") is not True:
        problems.append("the Zigbee service reports an unencrypted network")
    return problems, seen


async def _ble_exercise(gw_ble: GatewayBle) -> list[str]:
    """Refusals the BLE channel must produce; returns what went wrong (empty = all held)."""
    problems: list[str] = []
    # 1. legacy pairing
    refused = gw_ble.refused
    dev_t, gw_t = LoopbackTransport.pair(LEGACY)
    if await gw_ble.accept(gw_t, timeout=1.0) is not None:
        problems.append("a BLE link with legacy pairing was accepted")
    elif gw_ble.refused == refused:
        problems.append("legacy pairing was not reported as a refusal")
    # 2. a replayed handshake message (an unknown device: refused the first time as well)
    static = x25519.X25519PrivateKey.generate()
    hs = NoiseIK(True, static, PROLOGUE, public_bytes(gw_ble.static))
    frame = blelink.encode(blelink.HS1, 0, hs.write_message_1(b"{}"))
    for attempt in (1, 2):
        dev_t, gw_t = LoopbackTransport.pair()
        await dev_t.write(frame)
        if await gw_ble.accept(gw_t, timeout=1.0) is not None:
            problems.append(f"handshake attempt {attempt} of an unknown device was accepted")
    # 3. a replayed data frame on an established session (same channel code, probe keys)
    gw_static = x25519.X25519PrivateKey.generate()
    ini = NoiseIK(True, static, PROLOGUE, public_bytes(gw_static))
    rsp = NoiseIK(False, gw_static, PROLOGUE)
    rsp.read_message_1(ini.write_message_1(b""))
    ini.read_message_2(rsp.write_message_2(b""))
    assert ini.send is not None and ini.recv is not None
    assert rsp.send is not None and rsp.recv is not None
    dev_t, gw_t = LoopbackTransport.pair()
    inbox: asyncio.Queue[bytes] = asyncio.Queue()
    gw_t.set_notify(inbox.put_nowait)
    sender = BleSession(dev_t, asyncio.Queue(), ini.send, ini.recv, {})
    receiver = BleSession(gw_t, inbox, rsp.send, rsp.recv, {})
    await sender.send(b"selftest")
    if await receiver.recv(timeout=1.0) != b"selftest":
        problems.append("the probe session did not carry a frame")
    await dev_t.write(dev_t.sent[-1])
    try:
        await receiver.recv(timeout=1.0)
        problems.append("a replayed BLE data frame was accepted")
    except (ProtocolError, MamoriError):
        pass
    return problems


async def _zigbee_exercise(ieee_tag: str) -> tuple[list[str], list[str]]:
    from firmware.common.installcode import DEFAULT_TC_LINK_KEY, new_install_code
    from firmware.gateway.zigbee.app import FakeRadio, MamoriZigbeeApp

    problems: list[str] = []
    events: list[Any] = []
    cfg = {"device": {"path": "sim://selftest"}, "database_path": None}
    radio = FakeRadio()
    app = MamoriZigbeeApp(cfg, radio, events.append)
    tc = bytes(app.config["network"]["tc_link_key"])
    if tc == DEFAULT_TC_LINK_KEY:
        problems.append("the trust-centre link key is the public default ZigBeeAlliance09")
    try:
        MamoriZigbeeApp(dict(cfg, network={"tc_link_key": DEFAULT_TC_LINK_KEY.hex(":")}),
                        FakeRadio(), events.append)
        problems.append("the Zigbee application accepted the public default trust-centre key")
    except ConfigError:
        pass
    now = [1000.0]
    app.policy.clock = lambda: now[0]
    ieee = "00:12:4b:00:00:00:" + ieee_tag
    if radio.device_joins(ieee, 0x1001, DEFAULT_TC_LINK_KEY):
        problems.append("a join with the public default key was accepted")
    if radio.device_joins(ieee, 0x1002, secrets.token_bytes(16)):
        problems.append("a join with no join window open was accepted")
    key = app.policy.open_window("selftest-zb", ieee, new_install_code(), 60)
    now[0] += 61
    if radio.device_joins(ieee, 0x1003, key):
        problems.append("a join after the join window closed was accepted")
    rogue = [e for e in events if e.kind == "rogue.zigbee"]
    if len(rogue) < 3:
        problems.append(f"only {len(rogue)} of 3 refused joins raised rogue.zigbee")
    reasons = "; ".join(e.reason for e in rogue)
    return problems, [f"Zigbee: trust-centre key is not the default; refused joins: {reasons}"]


@check("wireless.links-encrypted", "Every wireless link is encrypted and authenticated",
       requirements=["SR3-H-5", "C9", "UK5"],
       remediation="re-pair BLE devices with LE Secure Connections through the Noise channel, "
                   "re-join Zigbee devices with their install code; never configure the public "
                   "default trust-centre key")
def links_encrypted(ctx: CheckContext) -> Outcome:
    """Judge the running links, then exercise the BLE channel and the Zigbee join policy."""
    try:
        board = ctx.board()
    except MamoriError as exc:
        return inconclusive(str(exc))
    problems, evidence = link_problems(_status(ctx))
    evidence = [f"running links: {', '.join(evidence) or 'no wireless device connected'}"]
    if board.radios.ble:
        gw = ScratchGateway(ctx.scratch(), board)
        try:
            gw_ble = GatewayBle(ctx.scratch(), gw.emit)
        except (MamoriError, OSError, ValueError) as exc:
            problems.append(f"the BLE channel cannot start with the installed identity: {exc}")
        else:
            problems += asyncio.run(_ble_exercise(gw_ble))
            reasons = [e.reason for e in gw.kinds("auth.refused")]
            if not any("LE Secure Connections" in r for r in reasons):
                problems.append("legacy pairing was not refused for its pairing mode")
            if not any("replayed handshake" in r for r in reasons):
                problems.append("a replayed handshake message was not refused as a replay")
            evidence.append("BLE refusals: " + "; ".join(reasons[:4]))
            evidence.append("BLE: a replayed data frame on an established session is refused")
    if board.radios.zigbee:
        zb_problems, zb_evidence = asyncio.run(_zigbee_exercise(secrets.token_hex(2)[:2]
                                                                + ":01"))
        problems += zb_problems
        evidence += zb_evidence
    if problems:
        return failed(*problems, *evidence)
    return passed(*evidence)
