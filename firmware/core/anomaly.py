"""Commanded vs actual (portable, sans-I/O, clock passed in).

After a successful command the gateway expects the device to *stay* in the commanded state.
An anomaly is raised when the state a device reports disagrees with what it was commanded:

- ``result-mismatch``: the device answered "ok" but the actual state in its result differs;
- ``drift``: a later heartbeat reports another state (more than ``grace`` seconds after the
  command, so a heartbeat already in flight is not mistaken for disobedience).

A manual (local) operation at the device has priority: it becomes the new expectation. One
anomaly is raised per divergence; ``resolved`` follows when the state agrees again.
"""

# action -> the state it commands (``set`` takes its position from the parameters)
EXPECTATIONS: dict = {
    "lock": {"locked": True}, "unlock": {"locked": False},
    "open": {"position": 100}, "close": {"position": 0},
    "arm": {"armed": True}, "disarm": {"armed": False},
}


def expected_state(action: str, params: "dict | None" = None) -> "dict | None":
    """The state an action commands, or None when it commands no checkable state."""
    if action == "set" and params and "position" in params:
        return {"position": params["position"]}
    exp = EXPECTATIONS.get(action)
    return dict(exp) if exp is not None else None


def differences(expected: dict, actual: "object") -> dict:
    """Keys whose actual value differs from the expected one: {key: {commanded, actual}}."""
    got: dict = actual if isinstance(actual, dict) else {}
    out = {}
    for key in expected:
        if got.get(key) != expected[key]:
            out[key] = {"commanded": expected[key], "actual": got.get(key)}
    return out


class CommandedState:
    """Remembers what each device was last commanded and checks what it reports."""

    def __init__(self, grace: float = 5.0) -> None:
        self.grace = grace
        self.expect: dict = {}
        self.open: dict = {}
        self.counts = {"checked": 0, "anomalies": 0, "resolved": 0}

    def result(self, device: str, action: str, params: "dict | None", ok: bool,
               actual: "object", now: float) -> list:
        """A command's result came back; return findings (anomaly if ok but not obeyed)."""
        exp = expected_state(action, params)
        if exp is None or not ok:
            return []  # a refused or failed command is reported as such, not as an anomaly
        self.expect[device] = {"state": exp, "action": action, "at": now}
        self.counts["checked"] += 1
        diff = differences(exp, actual)
        if diff:
            return self._raise(device, "result-mismatch", action, diff, now,
                               "device reported success but its state differs from the command")
        return self._resolve(device, now, "state agrees with the command")

    def reported(self, device: str, state: "object", now: float) -> list:
        """A heartbeat reported the device's state; return findings."""
        exp = self.expect.get(device)
        if exp is None or now - exp["at"] < self.grace:
            return []
        self.counts["checked"] += 1
        diff = differences(exp["state"], state)
        if diff:
            return self._raise(device, "drift", exp["action"], diff, now,
                               "reported state disagrees with the last command")
        return self._resolve(device, now, "state agrees with the command again")

    def local(self, device: str, state: "object", now: float) -> list:
        """A manual operation at the device: it becomes the expectation (owner has priority)."""
        exp = self.expect.get(device)
        if exp is None or not isinstance(state, dict):
            return []
        for key in exp["state"]:
            if key in state:
                exp["state"][key] = state[key]
        exp["action"] = "local"
        exp["at"] = now
        return self._resolve(device, now, "superseded by a manual operation")

    def forget(self, device: str) -> None:
        """Drop a device (removed or re-provisioned)."""
        self.expect.pop(device, None)
        self.open.pop(device, None)

    def _raise(self, device: str, kind: str, action: str, diff: dict, now: float,
               reason: str) -> list:
        if device in self.open:
            self.open[device]["diff"] = diff
            return []
        rec = {"finding": "anomaly", "kind": kind, "device": device, "action": action,
               "diff": diff, "at": now, "reason": reason}
        self.open[device] = rec
        self.counts["anomalies"] += 1
        return [rec]

    def _resolve(self, device: str, now: float, reason: str) -> list:
        rec = self.open.pop(device, None)
        if rec is None:
            return []
        self.counts["resolved"] += 1
        return [{"finding": "resolved", "kind": rec["kind"], "device": device,
                 "action": rec["action"], "diff": {}, "at": now, "reason": reason,
                 "open_for": now - rec["at"]}]
