"""A MicroPython device agent on the real MicroPython unix port, served by a real CPython gateway
(`mamori-gateway run --board sim --bundle …`) over mutual TLS, commanded through a real broker.

Admitted (TLS 1.2 for a model the signed allowlist declares constrained), kept online by its
heartbeats, a granted command executed, ★★★ refused up front because the port cannot verify
Ed25519 (reason in status); a foreign-site certificate, a revoked one and an unlisted model are
refused with exactly the reason a CPython device gets; a normal model may not use TLS 1.2.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, require
from tests.gateway.helpers import stop_gateway, wait_for
from tests.mpy.helpers import (
    MpyHouse,
    make_mpy_house,
    mpy_agent_cmd,
    refusal_reasons,
    rogue_gateway_cert,
    until,
)
from tests.trust.house import device, device_cmd, gateway, mamori, start_gateway

INTERVAL = "0.5"


@pytest.fixture
def house(tmp_path: Path) -> Iterator[MpyHouse]:
    require("micropython")
    h = make_mpy_house(tmp_path)
    yield h
    h.stop()


def test_micropython_device_admitted_kept_online_and_commanded(house: MpyHouse) -> None:
    require("mosquitto")
    pico = house.device("pico-1", "Pico")
    broker = house.broker(house.root / "broker")
    proc, endpoint = start_gateway(house.state, house.bundle, "--broker", broker.url)
    house.procs.append(proc)
    agent = house.spawn(mpy_agent_cmd(house.mpy(pico), endpoint, "--kind", "shutter",
                                      "--interval", INTERVAL))
    st = wait_for(house.state, lambda d: (d.get("wan") or {}).get("connected") is True
                  and device(d, "pico-1").get("state") == "online", 60)
    info = device(st, "pico-1")
    assert info["model"] == "Pico" and info["authenticated"] is True
    assert info["tls"] == "TLSv1.2" and info["tls_floor"] == "TLSv1.2"
    assert info["verifies"] == [] and "refused (fail closed)" in info["three_star_policy"]
    assert st["lan"]["tls_policy"]["tls12_models"] == ["Acme/Pico"]
    # Heartbeats keep it online: seen again and again, never suspect, over many intervals.
    first = info["last_seen"]
    seen = []

    def heard(d: dict[str, Any]) -> bool:
        seen.append(device(d, "pico-1")["state"])
        return device(d, "pico-1")["last_seen"] >= first + 8 * float(INTERVAL)

    wait_for(house.state, heard, 60)
    assert set(seen) == {"online"}, seen
    # A granted command runs on the device and the real state comes back.
    base = ["platform", "command", "--broker", broker.url, "--site", str(house.site.root),
            "--gateway", "gw-1", "--device", "pico-1", "--json", "--action"]
    ok = mamori(*base, "open")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["actual"] == {"position": 100}
    # ★★★ (granted in the ACL, signed by the platform): refused, the device cannot verify it.
    no = mamori(*base, "unlock")
    assert no.returncode == 3, no.stdout + no.stderr
    assert json.loads(no.stdout.split("\n}\n")[0] + "\n}")["refused"] == "cannot-verify"
    # The online check can fail: a silent device goes suspect.
    agent.terminate()
    agent.wait(30)
    wait_for(house.state, lambda d: device(d, "pico-1").get("state") in ("suspect", "offline"),
             60)
    code, err = stop_gateway(proc)
    assert code == 0, err


def _refused(house: MpyHouse, endpoint: str, mpy: Path, cpython: Path) -> tuple[str, str, str]:
    """Run the MicroPython agent, then the CPython one, with the same credentials; returns the
    refusal the gateway recorded (its access log), and what each agent said."""
    before = refusal_reasons(house.state)
    count = wait_for(house.state, lambda d: True, 30)["lan"]["refused"]
    m = subprocess.run(mpy_agent_cmd(mpy, endpoint, "--once"), cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert m.returncode == 1, m.stdout + m.stderr
    new = until(lambda: [r for r in refusal_reasons(house.state) if r not in before])
    assert len(new) == 1, new
    count = wait_for(house.state, lambda d: d["lan"]["refused"] > count, 30)["lan"]["refused"]
    c = subprocess.run(device_cmd(cpython, endpoint, "--once"), cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert c.returncode != 0, c.stdout + c.stderr
    # One more refusal of the same (source, reason): any other reason would have been a new
    # auth.refused record at once.
    wait_for(house.state, lambda d: d["lan"]["refused"] > count, 30)
    assert [r for r in refusal_reasons(house.state) if r not in before] == new
    return new[0], m.stderr, c.stderr


def test_bad_micropython_devices_refused_exactly_as_cpython_ones(house: MpyHouse) -> None:
    house.device("pico-ok", "Pico")
    proc, endpoint = start_gateway(house.state, house.bundle)
    house.procs.append(proc)
    # A certificate of another site, with this site's CA as trust (so it reaches the gateway).
    foreign = house.foreign_device("pico-x")
    reason, mpy_said, _ = _refused(house, endpoint, *foreign)
    assert "client certificate rejected" in reason, reason
    assert "TLS handshake with the gateway failed" in mpy_said
    # Revoked: the site revokes it, the running gateway gets the new CRL.
    revoked = house.device("pico-rev", "Pico")
    assert mamori("provision", "revoke", str(house.site.root), "--id", "pico-rev").returncode == 0
    inst = gateway("crl", "install", "--state-dir", str(house.state),
                   str(house.site.root / "ca" / "crl.pem"))
    assert inst.returncode == 0, inst.stdout + inst.stderr
    reason, mpy_said, cpy_said = _refused(house, endpoint, house.mpy(revoked), revoked)
    assert "is revoked" in reason, reason
    assert "credentials were revoked" in mpy_said and "credentials were revoked" in cpy_said
    # A model the site allowed after the gateway's bundle was made: not on its allowlist.
    house.site.allow("Acme", "Pico 2", "ip", constrained_stack=True)
    unlisted = house.device("pico-new", "Pico 2")
    reason, mpy_said, cpy_said = _refused(house, endpoint, house.mpy(unlisted), unlisted)
    assert "model Acme/Pico 2 over ip is not on the level-2 allowlist" in reason, reason
    assert "allowlist does not include this device's model" in mpy_said
    assert "allowlist does not include this device's model" in cpy_said
    # A normal model on TLS 1.2 (all the port offers): refused; the same device on TLS 1.3 is in.
    lock = house.device("lock-1", "Lock 1")
    m = subprocess.run(mpy_agent_cmd(house.mpy(lock), endpoint, "--once"), cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert m.returncode == 1 and "older TLS version than its model is allowed" in m.stderr
    c = subprocess.run(device_cmd(lock, endpoint, "--once"), cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert c.returncode == 0, c.stderr
    assert until(lambda: [r for r in refusal_reasons(house.state) if "requires TLSv1.3" in r])
    st = wait_for(house.state, lambda d: device(d, "lock-1").get("tls") == "TLSv1.3", 30)
    assert device(st, "lock-1")["model"] == "Lock 1"
    # And the good MicroPython device still gets in.
    ok = subprocess.run(mpy_agent_cmd(house.mpy(house.creds["pico-ok"]), endpoint, "--once"),
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["tls"] == ["TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384",
                                            "TLSv1.2"]
    code, err = stop_gateway(proc)
    assert code == 0, err


def test_micropython_agent_refuses_a_gateway_that_is_not_its_own(house: MpyHouse) -> None:
    # gw-2 is a genuine gateway of the same site, but the device is pinned to gw-1.
    pico = house.device("pico-2", "Pico")
    other = house.root / "state-gw2"
    proc, endpoint = start_gateway(other, house.bundles["gw-2"])
    house.procs.append(proc)
    m = subprocess.run(mpy_agent_cmd(house.mpy(pico), endpoint, "--once"), cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert m.returncode == 1
    assert "TLS handshake with the gateway failed" in m.stderr or "not gateway 'gw-1'" in m.stderr
    st = wait_for(other, lambda d: True, 30)
    assert device(st, "pico-2") == {}  # gw-2 never saw a hello: nothing was sent to it
    code, err = stop_gateway(proc)
    assert code == 0, err


def test_micropython_agent_refuses_a_reissued_certificate_of_its_gateway(
        house: MpyHouse) -> None:
    # Site CA, gateway id and name all right, but not the certificate the device is pinned to:
    # only the SHA-256 pin (from the verify callback) can tell, and nothing is sent to it.
    pico = house.device("pico-3", "Pico")
    cert, key = rogue_gateway_cert(house, house.root)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(60)
    got: dict[str, Any] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(30)
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                got["version"] = tls.version()
                got["data"] = tls.recv(4096)
        except (OSError, ssl.SSLError) as exc:
            got.setdefault("data", b"")
            got["error"] = str(exc)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    port = listener.getsockname()[1]
    m = subprocess.run(mpy_agent_cmd(house.mpy(pico), "127.0.0.1:%d" % port, "--once"),
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    t.join(60)
    listener.close()
    assert m.returncode == 1
    assert "not gateway 'gw-1', the one this device is pinned to" in m.stderr, m.stderr
    assert got["version"] == "TLSv1.2" and got["data"] == b""  # handshake done, no hello
