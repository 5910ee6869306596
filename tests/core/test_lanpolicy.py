"""Portable: the LAN's TLS floor per model comes from the allowlist entry, TLS 1.3 by default."""

from firmware.core import lanpolicy

NORMAL = {"maker": "Acme", "model": "Lock", "transports": ["ip"], "min_firmware": "0"}
SMALL = {"maker": "Acme", "model": "Pico", "transports": ["ip"], "min_firmware": "0",
         "constrained_stack": True}
SMALL_BLE = {"maker": "Acme", "model": "Tag", "transports": ["ble"], "min_firmware": "0",
             "constrained_stack": True}


def test_tls13_unless_the_model_declares_a_constrained_stack() -> None:
    assert lanpolicy.floor_for(NORMAL) == "TLSv1.3"
    assert lanpolicy.floor_for(SMALL) == "TLSv1.2"
    assert lanpolicy.floor_for(dict(SMALL, constrained_stack="yes")) == "TLSv1.3"  # not true
    assert lanpolicy.floor_for(None) == "TLSv1.3"


def test_the_server_accepts_tls12_only_for_a_constrained_ip_model() -> None:
    assert lanpolicy.server_floor([]) == "TLSv1.3"
    assert lanpolicy.server_floor([NORMAL, SMALL_BLE]) == "TLSv1.3"  # BLE is not the LAN
    assert lanpolicy.server_floor([NORMAL, SMALL]) == "TLSv1.2"
    assert lanpolicy.constrained_models([NORMAL, SMALL, SMALL_BLE]) == ["Acme/Pico"]


def test_a_device_below_its_models_floor_is_refused_with_the_reason() -> None:
    why = lanpolicy.refusal("TLSv1.3", "TLSv1.2", "Acme/Lock")
    assert why is not None and "TLSv1.2 negotiated" in why and "Acme/Lock requires TLSv1.3" in why
    assert lanpolicy.refusal("TLSv1.3", "TLSv1.3", "Acme/Lock") is None
    assert lanpolicy.refusal("TLSv1.2", "TLSv1.2", "Acme/Pico") is None
    assert lanpolicy.refusal("TLSv1.2", "TLSv1.3", "Acme/Pico") is None
    assert lanpolicy.refusal("TLSv1.2", "TLSv1.1", "Acme/Pico") is not None
    assert lanpolicy.refusal("TLSv1.2", None) is not None  # unknown: below everything
