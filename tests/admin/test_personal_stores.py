"""The one list of stores (firmware/gateway/owner/stores.py) against the code that writes them."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from firmware.gateway.owner.stores import OTHER, PERSONAL, personal_store, store_of

ROOT = Path(__file__).resolve().parents[2]
# Module constants that name a path inside the state directory (a relative path with a
# folder, or a top-level JSON file): every one must belong to a registered store.
_CONST = re.compile(r'^([A-Z][A-Z0-9_]*) = "([a-z][a-z0-9_.-]*(?:/[A-Za-z0-9_.*-]+)+'
                    r'|[a-z][a-z0-9_-]*\.json)"', re.M)
NOT_STATE_PATHS = {
    # relative to another folder than the state directory
    "firmware/gateway/update/slots.py:SLOT_RECORD",  # inside a slot
    "firmware/gateway/update/service.py:PENDING",  # inside update/
    "firmware/gateway/update/agent.py:PROVISIONED_ROOT",  # inside update/tuf/
    "firmware/gateway/selftest/commissioning.py:RECORD",  # inside installation/commissioning/
    "firmware/gateway/wan/topics.py:PREFIX",  # an MQTT topic
    "firmware/gateway/selftest/scratchtuf.py:TARGET",  # a TUF target path
    "firmware/gateway/accesslog/store.py:URGENT_FILE",  # inside accesslog/
    "firmware/gateway/identity/install.py:RELEASE_ROOT_FILE",  # inside identity/
    "firmware/gateway/identity/policies.py:DEVICE_BINDING",  # inside policy/
    "firmware/gateway/selftest/checks/baseos.py:DEPS_FILE",  # inside the application slot
}
_VERSIONED = re.compile(r"/\d+$")  # "mamori-resale/2": a document format, not a path


def _resolve(source: str) -> str:
    module, _, name = source.partition(":")
    value = getattr(importlib.import_module(module), name)
    return str(value)


def test_every_entry_names_the_constant_the_code_uses() -> None:
    for store in PERSONAL + OTHER:
        if not store.source:
            assert store.path.endswith("/") and store.holds.startswith("sim only"), store
            continue
        value = _resolve(store.source)
        base = store.path.rstrip("/*")
        assert store.matches(value) or value.rstrip("/") == base or \
            value.startswith(store.path), (store.path, store.source, value)
        assert store.at_rest and store.transfer and store.holds


def test_every_state_path_in_the_code_is_registered() -> None:
    found = []
    for path in sorted((ROOT / "firmware" / "gateway").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for name, value in _CONST.findall(path.read_text(encoding="utf-8")):
            if f"{rel}:{name}" in NOT_STATE_PATHS or _VERSIONED.search(value):
                continue
            found.append((f"{rel}:{name}", value))
    assert len(found) > 20  # the scan itself works
    missing = [(where, v) for where, v in found if store_of(v) is None]
    assert missing == [], "state-dir paths not in firmware/gateway/owner/stores.py: %s" % missing


def test_personal_stores_are_the_ones_holding_household_data() -> None:
    for rel in ("admin/admin.db", "admin/admin.db-journal", "wan/outbox.db-wal",
                "personal/data.bin", "accesslog/seg-00000003.log", "run/status.json",
                "admin/diagnostics/snapshot-1.json"):
        assert personal_store(rel) is not None, rel
    for rel in ("keys/device.kek", "identity/gateway.pem", "update/floors.json",
                "resale.json", "run/gateway.lock", "admin/locked.json", "wan/broker.json"):
        assert personal_store(rel) is None and store_of(rel) is not None, rel
    assert store_of("somewhere/new.db") is None  # an unregistered store is noticed
