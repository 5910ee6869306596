"""wireless.links-encrypted (SR3-H-5, C9, UK5): running links, BLE channel, Zigbee joins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.core import blelink
from firmware.gateway.ble import channel
from tests.selftest.helpers import provisioned, single_check

CID = "wireless.links-encrypted"
REQS = ["SR3-H-5", "C9", "UK5"]


run, assert_fail = single_check("wireless", CID, REQS)


def status(state: Path, devices: list[dict]) -> None:
    (state / "run").mkdir(exist_ok=True)
    (state / "run" / "status.json").write_text(json.dumps({"devices": devices}))


BLE_OK = {"id": "lock-ble", "transport": "ble", "state": "online", "encrypted": True,
          "authenticated": True, "mode": "noise-ik", "pairing": blelink.SECURE_PAIRING}
ZB_OK = {"id": "sensor-zb", "transport": "zigbee", "state": "online", "encrypted": True,
         "authenticated": True, "mode": "install-code-link-key"}


def test_encrypted_links_pass(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    status(state, [BLE_OK, ZB_OK, {"id": "cam", "transport": "ip", "encrypted": False}])
    r = run(state)[CID]
    assert r.verdict == "pass", r.evidence
    ev = "\n".join(r.evidence)
    assert "ble device lock-ble: noise-ik" in ev and "zigbee device sensor-zb" in ev
    assert "replayed handshake message" in ev and "only LE Secure Connections" in ev
    assert "join with the public default trust-centre key" in ev


@pytest.mark.parametrize(("change", "needle"), [
    ({"encrypted": False}, "ble device lock-ble: not encrypted"),
    ({"pairing": "legacy-just-works"}, "pairing 'legacy-just-works'"),
    ({"mode": "plain-gatt"}, "mode 'plain-gatt'"),
])
def test_unencrypted_ble_link_in_status_fails(tmp_path: Path, change: dict, needle: str) -> None:
    state = provisioned(tmp_path)
    status(state, [dict(BLE_OK, **change)])
    assert_fail(run(state), needle)


def test_legacy_pairing_accepted_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)
    monkeypatch.setattr(blelink, "check_pairing", lambda mode: None)
    assert_fail(run(state), "legacy pairing was not refused")


def test_replay_guard_disabled_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)
    monkeypatch.setattr(blelink.ReplayGuard, "check", lambda self, counter: None)
    assert_fail(run(state), "a replayed BLE data frame was accepted")


def test_handshake_replay_not_detected_fails(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)
    real = channel.GatewayBle.__init__

    def forgetful(self: channel.GatewayBle, *a: object, **kw: object) -> None:
        real(self, *a, **kw)  # type: ignore[arg-type]
        self.seen_ephemerals = _Forget()  # type: ignore[assignment]

    monkeypatch.setattr(channel.GatewayBle, "__init__", forgetful)
    assert_fail(run(state), "a replayed handshake message was not refused as a replay")


class _Forget(dict[bytes, None]):
    """An ephemeral-key memory that remembers nothing."""

    def __setitem__(self, key: bytes, value: None) -> None:
        return None

    def popitem(self, last: bool = True) -> tuple[bytes, None]:
        raise KeyError
