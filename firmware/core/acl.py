"""Per-device access control: which principal may command which device (portable, default deny).

A rule grants one principal (``platform``, ``local-admin``, ``owner-app``, ...) a set of actions
on one device (or on every device with ``"*"``). Anything no rule grants is refused with a reason.

Rules as plain data (what a config file or installation bundle carries)::

    [{"principal": "platform", "device": "door-1", "actions": ["lock", "unlock", "status"]},
     {"principal": "owner-app", "device": "*", "actions": ["status"]}]
"""

from firmware.core.errors import ConfigError, PolicyError

ANY = "*"


class AclRefused(PolicyError):
    """The ACL does not grant this principal this action on this device."""

    code = "acl"


class DeviceAcl:
    """Default-deny table of (principal, device) -> allowed actions."""

    def __init__(self, rules: "list | None" = None) -> None:
        self._grants: dict = {}
        for rule in rules or []:
            self.add_rule(rule)

    def add_rule(self, rule: dict) -> None:
        """Add one rule (dict with principal, device, actions); validated."""
        if not isinstance(rule, dict):
            raise ConfigError("an ACL rule must be a mapping", "acl")
        principal = rule.get("principal")
        device = rule.get("device")
        actions = rule.get("actions")
        if not isinstance(principal, str) or not principal or principal == ANY:
            raise ConfigError("rule needs a named principal (no wildcard)", "acl", "principal")
        if not isinstance(device, str) or not device:
            raise ConfigError("rule needs a device id or '*'", "acl", "device")
        if not isinstance(actions, list) or not actions:
            raise ConfigError("rule needs a non-empty list of actions", "acl", "actions")
        for a in actions:
            if not isinstance(a, str) or not a:
                raise ConfigError("actions must be non-empty strings", "acl", "actions")
        self.grant(principal, device, actions)

    def grant(self, principal: str, device: str, actions: list) -> None:
        """Allow principal to run actions on device ("*" = every device)."""
        key = (principal, device)
        current = self._grants.get(key)
        if current is None:
            current = set()
            self._grants[key] = current
        for a in actions:
            current.add(a)

    def revoke(self, principal: str, device: str) -> None:
        """Remove every grant of principal on device (exact key only)."""
        self._grants.pop((principal, device), None)

    def allows(self, principal: str, device: str, action: str) -> bool:
        """True when some rule grants the action."""
        for key in ((principal, device), (principal, ANY)):
            actions = self._grants.get(key)
            if actions is not None and (action in actions or ANY in actions):
                return True
        return False

    def check(self, principal: str, device: str, action: str) -> None:
        """Raise AclRefused (with the reason) unless the action is granted."""
        if not self.allows(principal, device, action):
            raise AclRefused(
                "principal '%s' may not '%s' device '%s'" % (principal, action, device),
                "grant it in the per-device ACL if it is intended (default deny)",
            )

    def to_rules(self) -> list:
        """Plain-data form (inverse of the constructor)."""
        out = []
        for key in sorted(self._grants):
            out.append({"principal": key[0], "device": key[1],
                        "actions": sorted(self._grants[key])})
        return out
