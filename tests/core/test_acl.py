"""Portable tests of the per-device ACL (run under pytest and MicroPython)."""

from firmware.core.acl import AclRefused, DeviceAcl
from firmware.core.errors import ConfigError
from tests.core.portable import raises


def test_default_deny() -> None:
    acl = DeviceAcl()
    assert not acl.allows("platform", "door-1", "unlock")
    exc = raises(AclRefused, acl.check, "platform", "door-1", "unlock")
    assert "default deny" in str(exc)


def test_grant_is_per_principal_device_and_action() -> None:
    acl = DeviceAcl([{"principal": "platform", "device": "door-1", "actions": ["unlock", "lock"]}])
    assert acl.allows("platform", "door-1", "unlock")
    assert not acl.allows("platform", "door-2", "unlock")
    assert not acl.allows("owner-app", "door-1", "unlock")
    assert not acl.allows("platform", "door-1", "disarm")
    acl.check("platform", "door-1", "lock")


def test_wildcard_device_and_action() -> None:
    acl = DeviceAcl([{"principal": "owner-app", "device": "*", "actions": ["status"]},
                     {"principal": "local-admin", "device": "siren", "actions": ["*"]}])
    assert acl.allows("owner-app", "anything", "status")
    assert not acl.allows("owner-app", "anything", "unlock")
    assert acl.allows("local-admin", "siren", "whatever")
    assert not acl.allows("local-admin", "door", "whatever")


def test_revoke() -> None:
    acl = DeviceAcl()
    acl.grant("platform", "door-1", ["unlock"])
    acl.revoke("platform", "door-1")
    assert not acl.allows("platform", "door-1", "unlock")


def test_bad_rules_rejected() -> None:
    raises(ConfigError, DeviceAcl, [{"principal": "*", "device": "d", "actions": ["a"]}])
    raises(ConfigError, DeviceAcl, [{"principal": "p", "device": "", "actions": ["a"]}])
    raises(ConfigError, DeviceAcl, [{"principal": "p", "device": "d", "actions": []}])
    raises(ConfigError, DeviceAcl, [{"principal": "p", "device": "d", "actions": [3]}])
    raises(ConfigError, DeviceAcl, ["not a mapping"])


def test_rules_roundtrip() -> None:
    rules = [{"principal": "platform", "device": "door-1", "actions": ["lock", "unlock"]}]
    assert DeviceAcl(rules).to_rules() == rules
