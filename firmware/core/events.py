"""Event model: everything the gateway observes or does becomes an Event (portable).

Events flow from services through the gateway's bus to the access log, the WAN uplink and the
status view. Severity decides the uplink priority: security events go before telemetry.
"""

SEVERITIES = ("debug", "info", "notice", "warning", "alert", "critical")

# Uplink priority: lower number is sent first.
PRIORITY = {"critical": 0, "alert": 0, "warning": 1, "notice": 2, "info": 3, "debug": 4}

SOURCES = (
    "gateway", "platform", "owner-app", "local-admin", "maintenance", "device", "usb", "lan",
    "ble", "zigbee", "ota", "selftest",
)


class Event:
    """One thing that happened: who (source, principal) did what (action) to what (target)."""

    __slots__ = (
        "kind", "severity", "source", "principal", "action", "target", "result", "reason",
        "params", "ts", "mono", "event_id",
    )

    def __init__(
        self,
        kind: str,
        severity: str = "info",
        source: str = "gateway",
        principal: str = "",
        action: str = "",
        target: str = "",
        result: str = "",
        reason: str = "",
        params: "dict | None" = None,
        ts: float = 0.0,
        mono: float = 0.0,
        event_id: str = "",
    ) -> None:
        if severity not in PRIORITY:
            raise ValueError("unknown severity: " + str(severity))
        self.kind = kind
        self.severity = severity
        self.source = source
        self.principal = principal
        self.action = action
        self.target = target
        self.result = result
        self.reason = reason
        self.params = params if params is not None else {}
        self.ts = ts
        self.mono = mono
        self.event_id = event_id

    @property
    def priority(self) -> int:
        """Uplink priority (0 is most urgent)."""
        return PRIORITY[self.severity]

    @property
    def is_security(self) -> bool:
        """True for events an operator must see (alerts and worse)."""
        return self.priority <= 1

    def to_dict(self) -> dict:
        """Plain-data form (JSON-safe when params are)."""
        return {
            "id": self.event_id,
            "kind": self.kind,
            "severity": self.severity,
            "source": self.source,
            "principal": self.principal,
            "action": self.action,
            "target": self.target,
            "result": self.result,
            "reason": self.reason,
            "params": self.params,
            "ts": self.ts,
            "mono": self.mono,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Event":
        """Inverse of to_dict; unknown keys are ignored."""
        return cls(
            kind=d["kind"],
            severity=d.get("severity", "info"),
            source=d.get("source", "gateway"),
            principal=d.get("principal", ""),
            action=d.get("action", ""),
            target=d.get("target", ""),
            result=d.get("result", ""),
            reason=d.get("reason", ""),
            params=d.get("params") or {},
            ts=d.get("ts", 0.0),
            mono=d.get("mono", 0.0),
            event_id=d.get("id", ""),
        )

    def __repr__(self) -> str:
        return "Event(%s, %s, %s)" % (self.kind, self.severity, self.target)
