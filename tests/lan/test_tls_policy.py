"""The LAN's TLS floor per model (signed allowlist): TLS 1.3 by default, TLS 1.2 (ECDHE + AEAD)
only for models that declare a constrained stack; a normal model on TLS 1.2 is refused after the
handshake through the normal refusal path. Real sockets and real TLS on loopback."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from firmware.core.errors import AuthError, MamoriError
from firmware.core.events import Event
from firmware.device.credentials import tls_context as client_context
from firmware.device.portable.agent import DeviceAgent
from firmware.device.runner import run_session
from firmware.gateway.identity.install import install_bundle
from firmware.gateway.lan.service import LanService
from firmware.gateway.lan.tls import server_context
from provisioning.devices import issue_device
from provisioning.gateway import issue_gateway
from provisioning.site import Site
from tests.lan.test_mutual_tls import refusals, run_gateway, wait_for
from tests.provisioning.sitekit import Kit, load


class SmallKit(Kit):
    """A site whose allowlist has a normal model (Lock1) and a constrained one (Pico)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.site = Site.init(root / "site", 2, "Home")
        self.site.allow("Acme", "Lock1", "ip")
        self.site.allow("Acme", "Pico", "ip", constrained_stack=True)
        self.bundle = root / "gw1.bundle"
        self.gw = issue_gateway(self.site, "sim", "gw1", self.bundle)
        self.state = root / "state"
        self.installed = install_bundle(self.state, self.bundle)

    def creds(self, dev_id: str, model: str) -> dict:
        out = self.root / (dev_id + ".json")
        issue_device(self.site, "ip", "Acme", model, dev_id, out, gateway="gw1")
        return load(out)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> SmallKit:
    return SmallKit(tmp_path_factory.mktemp("small"))


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("normal"))


def tls12_only(creds: dict) -> ssl.SSLContext:
    """The device's own context, held to TLS 1.2 (what Mbed TLS in MicroPython offers)."""
    ctx = client_context(creds)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def session(lan: LanService, creds: dict, ctx: ssl.SSLContext) -> DeviceAgent:
    agent = DeviceAgent(creds["device_id"], kind="sensor", interval=0.2,
                        maker=creds["maker"], model=creds["model"], transport="ip")
    await run_session(agent, "127.0.0.1", lan.port, ctx, heartbeats=1)
    return agent


def test_server_floor_follows_the_allowlist(small: SmallKit, kit: Kit) -> None:
    assert server_context(small.state).minimum_version == ssl.TLSVersion.TLSv1_2
    assert server_context(kit.state).minimum_version == ssl.TLSVersion.TLSv1_3
    # TLS 1.2 suites: ECDHE key exchange with AEAD only.
    for c in server_context(small.state).get_ciphers():
        if c["protocol"] == "TLSv1.2":
            assert c["kea"] == "kx-ecdhe" and c["aead"], c["name"]


def test_constrained_model_on_tls12_admitted_normal_model_on_tls12_refused(
        small: SmallKit) -> None:
    pico = small.creds("pico-1", "Pico")
    lock = small.creds("lock-1", "Lock1")

    async def scenario(lan: LanService, events: list[Event]) -> None:
        await session(lan, pico, tls12_only(pico))
        await wait_for(lambda: "pico-1" in lan.gw.device_info)
        info = lan.gw.device_info["pico-1"]
        assert info["tls"] == "TLSv1.2" and info["tls_floor"] == "TLSv1.2"
        policy = lan.status()["tls_policy"]
        assert policy["min_version"] == "TLSv1.2" and policy["tls12_models"] == ["Acme/Pico"]
        # A normal model negotiating TLS 1.2: through the handshake, refused at admission.
        with pytest.raises(AuthError) as refused:
            await session(lan, lock, tls12_only(lock))
        assert "older TLS version than its model is allowed" in str(refused.value)
        await wait_for(lambda: bool(refusals(events)))
        assert "lock-1" not in lan.sessions
        # The same device on TLS 1.3 is admitted (control).
        await session(lan, lock, client_context(lock))
        await wait_for(lambda: lan.gw.device_info.get("lock-1", {}).get("tls") == "TLSv1.3")

    events = run_gateway(small, scenario)
    ref = refusals(events)
    assert len(ref) == 1 and ref[0].principal == "lock-1"
    assert "TLSv1.2 negotiated, but model Acme/Lock1 requires TLSv1.3" in ref[0].reason


def test_without_a_constrained_model_tls12_fails_the_handshake(kit: Kit) -> None:
    creds = load(kit.device("lock-12"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        assert lan.status()["tls_policy"]["min_version"] == "TLSv1.3"
        with pytest.raises(MamoriError):  # the gateway drops it mid-handshake
            await session(lan, creds, tls12_only(creds))
        await wait_for(lambda: bool(refusals(events)))
        assert not lan.sessions

    events = run_gateway(kit, scenario)
    assert "TLS handshake failed" in refusals(events)[0].reason


def test_server_policy_is_visible_before_any_device(small: SmallKit) -> None:
    async def scenario(lan: LanService, events: list[Event]) -> None:
        policy = lan.status()["tls_policy"]
        assert policy == {"min_version": "TLSv1.2", "allowlist_floor": "TLSv1.2",
                          "tls12_models": ["Acme/Pico"], "default": "TLSv1.3",
                          "tls12_suites": policy["tls12_suites"]}
        assert "ECDHE" in policy["tls12_suites"] and "AEAD" in policy["tls12_suites"]

    run_gateway(small, scenario)
