"""A CRL past its next update is stale, not fatal (issue 14, part 2).

The gateway, the devices and the self-test run as real processes under ``faketime``, 40 days
after the site signed its 30-day CRL: the revoked device stays refused, every other device
connects, ``crl.stale`` is raised and the self-test fails ``keys.crl-fresh`` until a fresh CRL
is installed. Before this change OpenSSL's CRL check refused *every* device ("CRL has expired").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from firmware.common.boards import load_board
from firmware.core.events import Event
from firmware.gateway.devices.revocation import RevocationService
from firmware.gateway.identity.install import install_bundle
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from provisioning.site import CRL_DAYS, Site
from tests.conftest import ROOT, require
from tests.gateway.helpers import gateway_cmd, stop_gateway, wait_for, wait_logged
from tests.trust.house import (
    House,
    device_cmd,
    events,
    faketime_env,
    gateway,
    make_house,
    start_gateway,
)

SKIP_DAYS = CRL_DAYS + 10


def crl_at(site: Site, start: dt.datetime, days: float, number: int) -> bytes:
    """The site's current revocations, signed as of `start` for `days` (a CRL of another time)."""
    now_list = x509.load_pem_x509_crl(site.crl_pem().encode())
    b = (x509.CertificateRevocationListBuilder().issuer_name(site.ca_cert().subject)
         .last_update(start - dt.timedelta(minutes=5))
         .next_update(start + dt.timedelta(days=days))
         .add_extension(x509.CRLNumber(number), critical=False))
    for r in now_list:
        b = b.add_revoked_certificate(r)
    return b.sign(site.ca_key(), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def house(tmp_path: Path) -> House:
    h = make_house(tmp_path)
    h.device("door")
    h.device("lost", model="Sensor 1")
    install_bundle(h.state, h.bundles["gw-1"])
    h.site.revoke("lost")
    assert gateway("crl", "install", "--state-dir", str(h.state),
                   str(h.site.root / "ca" / "crl.pem")).returncode == 0
    return h


def test_stale_crl_keeps_the_house_working(house: House) -> None:
    require("faketime")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=SKIP_DAYS)
    fake: tuple[str, ...] = ()
    env = faketime_env(SKIP_DAYS)
    proc, endpoint = start_gateway(house.state, house.bundles["gw-1"], env=env)
    try:
        door = subprocess.run([*fake, *device_cmd(house.creds["door"], endpoint, "--once")],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
        assert door.returncode == 0, door.stderr  # before: "CRL has expired", for everyone
        lost = subprocess.run([*fake, *device_cmd(house.creds["lost"], endpoint, "--once")],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
        assert lost.returncode != 0 and "refused" in lost.stderr
        st = wait_for(house.state, lambda d: bool(events(d, "crl.stale")))
        logged = wait_logged(proc, lambda evs: any(
            e["kind"] == "auth.refused" and "revoked" in e.get("reason", "") for e in evs))
        stale = [e for e in logged if e["kind"] == "crl.stale"][0]
        assert stale["severity"] == "critical" and "devices on it stay refused" in \
            stale["reason"]
        assert st["crl"]["state"] == "stale" and st["crl"]["revoked"] == 1
        assert [e["reason"] for e in logged
                if e["kind"] == "auth.refused" and e.get("principal") == "door"] == []
        selftest = [*fake, *gateway_cmd("selftest", "--state-dir", str(house.state),
                                        "--only", "keys.crl-fresh", "--json")]
        failed = subprocess.run(selftest, cwd=ROOT, capture_output=True, text=True,
                                timeout=120, env=env)
        assert failed.returncode == 2, failed.stdout + failed.stderr
        assert "stale" in failed.stdout
        # the fresh list arrives: fresh again, the self-test passes, still refusing `lost`
        fresh = house.root / "fresh.pem"
        fresh.write_bytes(crl_at(house.site, later, CRL_DAYS, house.site.crl().number + 1))
        inst = subprocess.run([*fake, *gateway_cmd("crl", "install", "--state-dir",
                                                   str(house.state), str(fresh))],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
        assert inst.returncode == 0, inst.stderr
        wait_for(house.state, lambda d: d["crl"]["state"] == "fresh")
        passed = subprocess.run(selftest, cwd=ROOT, capture_output=True, text=True,
                                timeout=120, env=env)
        assert passed.returncode == 0, passed.stdout + passed.stderr
        lost = subprocess.run([*fake, *device_cmd(house.creds["lost"], endpoint, "--once")],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
        assert lost.returncode != 0
    finally:
        code, err = stop_gateway(proc)
    assert code == 0, err


async def _until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


def _watch(house: House, pem: bytes, repeat: float, until: Callable[[list[Event]], bool],
           then: bytes | None = None) -> list[Event]:
    (house.state / "identity" / "crl.pem").write_bytes(pem)

    async def main() -> list[Event]:
        gw = Gateway(GatewayConfig("sim", house.state), load_board("sim"))
        events: list[Event] = []
        gw.bus.subscribe(events.append)
        svc = RevocationService(gw, None, tick=0.02, repeat=repeat)
        await svc.start()
        await _until(lambda: until(events))
        if then is not None:
            await svc.install(then)
            mark = len(events)
            await asyncio.sleep(repeat * 3)  # a repeat would have come by now
            assert not [e for e in events[mark:] if e.kind == "crl.stale"]
        await svc.stop()
        await gw.supervisor.stop()
        return events

    return asyncio.run(main())


def test_stale_alert_repeats_until_a_fresh_list_arrives(house: House) -> None:
    now = dt.datetime.now(dt.UTC)
    n = house.site.crl().number
    stale = crl_at(house.site, now - dt.timedelta(days=SKIP_DAYS), CRL_DAYS, n + 1)
    events = _watch(house, stale, 0.2,
                    lambda ev: len([e for e in ev if e.kind == "crl.stale"]) >= 3,
                    then=crl_at(house.site, now, CRL_DAYS, n + 2))
    stale_events = [e for e in events if e.kind == "crl.stale"]
    assert all(e.severity == "critical" for e in stale_events)
    assert any(e.kind == "crl.installed" for e in events)


def test_aging_alert_once_at_80_percent(house: House) -> None:
    now = dt.datetime.now(dt.UTC)
    aging = crl_at(house.site, now - dt.timedelta(days=26), CRL_DAYS, house.site.crl().number
                   + 1)
    events = _watch(house, aging, 0.05, lambda ev: any(e.kind == "crl.aging" for e in ev))
    assert len([e for e in events if e.kind == "crl.aging"]) == 1
    assert not [e for e in events if e.kind == "crl.stale"]
