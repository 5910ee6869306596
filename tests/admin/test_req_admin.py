"""Requirement-focused admin tests the traceability matrix points at (R3-8: diagnostics)."""

from __future__ import annotations

import json
from pathlib import Path

from firmware.gateway.identity.keystore import KeyStore
from tests.admin.helpers import NEW_INSTALLER, OWNER_NEW, OWNER_PW, World, body

CANARIES = {"name": "CANARY-NAME-5d20", "email": "canary-7a1b@example.jp"}


def test_diagnostic_export_carries_no_secret_or_personal_data(tmp_path: Path) -> None:
    w = World(tmp_path)
    inst = w.installer()
    owner = w.account(inst, "sato", "owner", OWNER_PW, OWNER_NEW)
    owner.login("sato", OWNER_NEW)
    assert owner.call("PUT", "/api/owner/data", CANARIES).status == 204
    made = inst.call("POST", "/api/diagnostics")
    assert made.status == 200, body(made)
    name = body(made)["name"]
    got = inst.call("GET", "/api/diagnostics/" + name)
    assert got.status == 200
    content = body(got)["content"]
    json.loads(content)  # a readable snapshot, not an empty file
    raw = (w.state / "admin" / "diagnostics" / name).read_text()
    forbidden = [w.initial, NEW_INSTALLER, OWNER_PW, OWNER_NEW, inst.token, inst.csrf,
                 owner.token, owner.csrf, *CANARIES.values()]
    stored = KeyStore(w.state)
    for entry in stored.inventory():
        secret = stored.get(entry["name"])
        forbidden.append(secret.decode("latin-1"))
        forbidden.append(secret.hex())
        try:  # a JSON record (e.g. the credential hash): each of its strings is secret too
            forbidden.extend(v for v in json.loads(secret).values() if isinstance(v, str))
        except (ValueError, AttributeError):
            pass
    for value in forbidden:
        assert value and value not in content and value not in raw
