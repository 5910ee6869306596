"""Site PKI, bundles, allowlist, inventory, revocation, admin credential, secret hygiene."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from firmware.common.installcode import check_install_code, link_key
from firmware.common.passwords import MustChangeCredential
from firmware.core.errors import AuthError, ConfigError, IntegrityError, PolicyError, StateError
from firmware.gateway.identity import install
from firmware.gateway.identity.keystore import KeyStore
from firmware.gateway.identity.tickets import InstallTickets
from host_tools.cli.main import main as mamori
from provisioning import pki
from provisioning.gateway import issue_gateway
from provisioning.site import Site
from tests.provisioning.sitekit import Kit, load, secrets_of


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("prov"))


def admin_of(bundle: Path) -> str:
    return Path(str(bundle) + ".admin-credential").read_text().strip().splitlines()[-1]


def test_two_gateways_have_different_admin_credentials(kit: Kit) -> None:
    b2 = kit.root / "gw2.bundle"
    issue_gateway(kit.site, "sim", "gw2", b2)
    a1, a2 = admin_of(kit.bundle), admin_of(b2)
    assert a1 != a2 and len(a1) >= 20
    d1 = json.loads(kit.bundle.read_text())["payload"]["admin"]
    d2 = json.loads(b2.read_text())["payload"]["admin"]
    assert d1["hash"] != d2["hash"] and d1["must_change"] and d2["must_change"]
    assert a1 not in kit.bundle.read_text()
    assert stat.S_IMODE(os.stat(str(kit.bundle) + ".admin-credential").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(kit.bundle).st_mode) == 0o600


def test_admin_credential_unusable_until_changed(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    initial = admin_of(k.bundle)
    with pytest.raises(MustChangeCredential):
        install.authenticate_admin(k.state, initial)
    with pytest.raises(AuthError):
        install.authenticate_admin(k.state, "wrong-credential")
    with pytest.raises(PolicyError):
        install.change_admin_credential(k.state, initial, "short")
    with pytest.raises(PolicyError):
        install.change_admin_credential(k.state, initial, initial)
    with pytest.raises(AuthError):
        install.change_admin_credential(k.state, "not-the-initial", "a-brand-new-secret-1")
    install.change_admin_credential(k.state, initial, "a-brand-new-secret-1")
    install.authenticate_admin(k.state, "a-brand-new-secret-1")
    with pytest.raises(AuthError):
        install.authenticate_admin(k.state, initial)


def test_no_secret_in_plaintext_in_state_dir_or_output(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "s"
    assert mamori(["provision", "init-site", str(site), "--level", "3", "--name", "T"]) == 0
    for t in ("ip", "ble"):
        assert mamori(["provision", "allow", str(site), "--maker", "A", "--model", "M",
                       "--transport", t]) == 0
    assert mamori(["provision", "allow", str(site), "--maker", "A", "--model", "Z",
                   "--transport", "zigbee"]) == 0
    bundle = tmp_path / "gw.bundle"
    assert mamori(["provision", "gateway", str(site), "--board", "sim", "--id", "gw",
                   "--out", str(bundle), "--json"]) == 0
    files = [bundle, Path(str(bundle) + ".admin-credential")]
    for t, m in (("ip", "M"), ("ble", "M"), ("zigbee", "Z")):
        out = tmp_path / ("d-%s.json" % t)
        assert mamori(["provision", "device", str(site), "--transport", t, "--maker", "A",
                       "--model", m, "--id", "d-" + t, "--out", str(out)]) == 0
        files.append(out)
    assert mamori(["provision", "install-secret", str(site), "--gateway", "gw", "--device",
                   "d-ip", "--out", str(tmp_path / "t.json"), "--json"]) == 0
    assert mamori(["provision", "revoke", str(site), "--id", "d-ble", "--json"]) == 0
    assert mamori(["provision", "inventory", str(site), "--json"]) == 0
    assert mamori(["provision", "inventory", str(site)]) == 0
    state = tmp_path / "state"
    install.install_bundle(state, bundle)
    out = capsys.readouterr()
    secrets = secrets_of(*files)
    code = (tmp_path / "t.json.secret.txt").read_text().split()[
        (tmp_path / "t.json.secret.txt").read_text().split().index("until") + 2]
    secrets.append(code.encode())
    assert len(secrets) >= 8
    blobs = [out.out.encode(), out.err.encode()]
    blobs += [p.read_bytes() for p in state.rglob("*") if p.is_file()]
    blobs += [p.read_bytes() for p in site.rglob("*") if p.is_file() and p.suffix != ".key"]
    for s in secrets:
        for blob in blobs:
            assert s not in blob
    for p in list(state.rglob("*")) + [f for f in site.rglob("*.key")]:
        if p.is_file() and (p.suffix in (".key", ".kek") or p.name == "gateway-key.pem"):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_inventory_records_who_what_when(kit: Kit) -> None:
    kit.device("inv-1")
    rows = kit.site.inventory()
    actions = [r["action"] for r in rows]
    assert "init-site" in actions and "issue-gateway" in actions and "issue-device" in actions
    row = [r for r in rows if r["subject"] == "inv-1"][0]
    assert row["by"] and row["at"] and row["serial"] and row["model"] == "Lock1"


def test_device_refused_when_model_not_allowlisted(kit: Kit) -> None:
    with pytest.raises(PolicyError):
        kit.device("cam-1", maker="Cheap", model="Cam")
    with pytest.raises(PolicyError):
        kit.device("zb-over-ip", model="Zb1")  # allowed for zigbee only
    with pytest.raises(ConfigError):
        kit.device("../escape")
    kit.device("dup-1")
    with pytest.raises(ConfigError):
        kit.device("dup-1")


def test_tampered_allowlist_detected(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    doc = json.loads((k.site.root / "allowlist.json").read_text())
    doc["payload"]["entries"].append({"maker": "Evil", "model": "X", "transports": ["ip"],
                                      "min_firmware": "0"})
    (k.site.root / "allowlist.json").write_text(json.dumps(doc))
    with pytest.raises(IntegrityError):
        k.site.allowlist()


def test_bundle_forged_tampered_or_foreign_root_refused(tmp_path: Path) -> None:
    k = Kit(tmp_path / "a")
    other = Kit(tmp_path / "b")
    doc = json.loads(k.bundle.read_text())
    doc["payload"]["level"] = 3
    bad = tmp_path / "tampered.bundle"
    bad.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError):
        install.install_bundle(tmp_path / "s1", bad)
    # a bundle from another service root cannot replace the pinned one
    with pytest.raises(IntegrityError):
        install.install_bundle(k.state, other.bundle)
    with pytest.raises(IntegrityError):
        install.install_bundle(tmp_path / "s2", other.bundle,
                               root_fingerprint=k.site.meta["root_fingerprint"])
    junk = tmp_path / "junk.bundle"
    junk.write_bytes(b"\x00" * 10)
    with pytest.raises(IntegrityError):
        install.install_bundle(tmp_path / "s3", junk)
    big = tmp_path / "big.bundle"
    big.write_bytes(b" " * (install.MAX_BUNDLE + 1))
    with pytest.raises(IntegrityError):
        install.install_bundle(tmp_path / "s4", big)
    # the same gateway re-installs fine with its pinned root
    assert install.install_bundle(k.state, k.bundle)["root_trust"] == "pinned"


def test_csr_flow_keys_made_on_gateway(tmp_path: Path) -> None:
    site = Site.init(tmp_path / "site", 2, "C")
    state = tmp_path / "state"
    req = tmp_path / "req.json"
    install.enrol_request(state, "gw-csr", req)
    assert "PRIVATE" not in req.read_text()
    res = issue_gateway(site, "sim", "gw-csr", tmp_path / "b", request=req)
    assert res["key_origin"] == "generated-on-gateway"
    assert json.loads((tmp_path / "b").read_text())["payload"]["secrets"] == {}
    meta = install.install_bundle(state, tmp_path / "b")
    assert meta["key_origin"].startswith("generated on the gateway")
    assert not KeyStore(state).has(install.PENDING_TLS)
    with pytest.raises(ConfigError):
        issue_gateway(site, "sim", "someone-else", tmp_path / "c", request=req)


def test_keystore_inventory_and_tamper(kit: Kit) -> None:
    ks = KeyStore(kit.state)
    inv = {e["name"]: e for e in ks.inventory()}
    assert set(inv) == {"admin-credential", "ble-static", "gateway-tls-passphrase"}
    for e in inv.values():
        assert {"purpose", "algorithm", "size_bits", "origin", "created", "cryptoperiod_days",
                "storage"} <= set(e) and e["size_bits"] >= 224
    assert ks.check() == []
    p = kit.state / "keys/store/ble-static.key"
    raw = bytearray(p.read_bytes())
    raw[-1] ^= 1
    p.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        ks.get("ble-static")
    with pytest.raises(StateError):
        ks.get("absent")


def test_revocation_lands_in_crl(kit: Kit) -> None:
    kit.device("rev-1")
    rec = kit.site.revoke("rev-1")
    from cryptography import x509
    crl = x509.load_pem_x509_crl(kit.site.crl_pem().encode())
    assert crl.get_revoked_certificate_by_serial_number(int(rec["serials"][0])) is not None
    with pytest.raises(StateError):
        kit.site.revoke("rev-1")


def test_zigbee_install_code_and_link_key(kit: Kit) -> None:
    vec = bytes.fromhex("83FED3407A939723A5C639B26916D505C3B5")
    assert link_key(vec).hex().upper() == "66B6900981E1EE3CA4206B6B861C02BB"
    with pytest.raises(IntegrityError):
        check_install_code(vec[:-1] + b"\x00")
    creds = load(kit.device("zb-1", transport="zigbee"))
    assert len(link_key(bytes.fromhex(creds["install_code"]))) == 16


def test_install_secret_one_time_and_window(kit: Kit) -> None:
    from provisioning.installsecret import issue_install_secret
    res = issue_install_secret(kit.site, "gw1", "new-dev", kit.root / "tk.json", minutes=5)
    text = Path(res["secret_file"]).read_text()
    code = text.split()[text.split().index("until") + 2]
    ticket = json.loads((kit.root / "tk.json").read_text())
    tickets = InstallTickets(kit.state)
    with pytest.raises(AuthError):
        tickets.redeem(ticket, "AAAA-BBBB-CCCC-DDDD", "new-dev")
    with pytest.raises(AuthError):
        tickets.redeem(ticket, code, "other-dev")
    assert tickets.redeem(ticket, code.lower(), "new-dev")["device_id"] == "new-dev"
    with pytest.raises(AuthError):
        tickets.redeem(ticket, code, "new-dev")  # one-time
    late = InstallTickets(kit.state, now=lambda: pki.now().timestamp() + 3600)
    res2 = issue_install_secret(kit.site, "gw1", "late-dev", kit.root / "tk2.json")
    t2 = Path(res2["secret_file"]).read_text()
    with pytest.raises(AuthError):
        late.redeem(json.loads((kit.root / "tk2.json").read_text()),
                    t2.split()[t2.split().index("until") + 2], "late-dev")
    assert Path(res["qr_svg"]).read_bytes().startswith(b"<?xml")
