"""USB authorisation policy: evaluate a device against rules, board profile and windows (portable).

A device is a plain dict: ``name`` (sysfs name, e.g. ``1-4``; root hubs are ``usbN``), ``id``
(``vvvv:pppp``), ``serial``, ``product``, ``connect_type``, ``device_class`` and ``interfaces``
(``[{name, type, types}]``, type ``CC:SS:PP`` in hex). Decision order, first hit wins:

1. root hubs are always allowed (never de-authorised: that locks owners out);
2. a port the board marks not needed (or anything behind it) is blocked, in every mode;
3. hubs on the path to a board-listed port, and the board's needed device on its port (exact
   ``id`` and port), are allowed;
4. the rule file, first matching rule (USBGuard semantics);
5. an open maintenance window covering the device;
6. default deny (``block``).

Interfaces of an allowed device whose class is restricted (HID, mass storage, network) are
refused unless the deciding rule names that class in ``with-interface`` or a window covers it.
"""

from firmware.core.usbrules import format_rule, parse_rules, port_locked, quote

# C10: classes a gateway does not need unless a rule explicitly names them.
RESTRICTED = (
    ("03:*:*", "HID"),
    ("08:*:*", "mass storage"),
    ("02:*:*", "CDC communications (network/modem)"),
    ("0a:*:*", "CDC data"),
    ("e0:*:*", "wireless controller (RNDIS/Bluetooth)"),
    ("ef:04:*", "RNDIS network"),
)
HUB_TYPE = "09:*:*"


def pattern_match(pattern: str, value: str) -> bool:
    """Match a colon-separated value against a pattern whose parts may be ``*``."""
    pp = pattern.split(":")
    vp = value.lower().split(":")
    if len(pp) != len(vp):
        return False
    for a, b in zip(pp, vp):
        if a != "*" and a != b:
            return False
    return True


def _elem_match(name: str, rule_value: str, dev_value: str) -> bool:
    if name in ("id", "with-interface"):
        return pattern_match(rule_value, dev_value)
    return rule_value == dev_value


def set_match(name: str, op: str, rule_values: list, dev_values: list) -> bool:
    """USBGuard's set operators between a rule's values and a device's values."""
    def covered(rv: str) -> bool:
        return any(_elem_match(name, rv, dv) for dv in dev_values)

    def known(dv: str) -> bool:
        return any(_elem_match(name, rv, dv) for rv in rule_values)

    if op == "all-of":
        return all(covered(rv) for rv in rule_values)
    if op == "one-of":
        return any(covered(rv) for rv in rule_values)
    if op == "none-of":
        return not any(covered(rv) for rv in rule_values)
    if op == "equals":
        return all(covered(rv) for rv in rule_values) and all(known(dv) for dv in dev_values)
    if op == "equals-ordered":
        return len(rule_values) == len(dev_values) and all(
            _elem_match(name, rule_values[i], dev_values[i]) for i in range(len(dev_values)))
    if op == "match-all":
        return bool(dev_values) and all(known(dv) for dv in dev_values)
    return False


def device_types(device: dict) -> list:
    """Every distinct interface type the device declares (alternate settings included)."""
    out = []
    for iface in device.get("interfaces", []):
        for t in iface.get("types") or [iface["type"]]:
            if t not in out:
                out.append(t)
    return out


def _device_values(device: dict, name: str) -> list:
    if name == "id":
        return [device.get("id", "")]
    if name == "serial":
        return [device.get("serial", "")]
    if name == "name":
        return [device.get("product", "")]
    if name == "via-port":
        return [device.get("name", "")]
    if name == "with-connect-type":
        return [device.get("connect_type", "")]
    if name == "with-interface":
        return device_types(device)
    return []


def rule_matches(rule: object, device: dict) -> bool:
    """True when every attribute of the rule matches the device."""
    for name in rule.attrs:  # type: ignore[attr-defined]
        if name == "label":
            continue
        op, values = rule.attrs[name]  # type: ignore[attr-defined]
        if not set_match(name, op, values, _device_values(device, name)):
            return False
    return True


def restricted_class(itype: str) -> str:
    """The restricted class name an interface type falls in, or ''."""
    for pattern, label in RESTRICTED:
        if pattern_match(pattern, itype):
            return label
    return ""


def is_root_hub(device: dict) -> bool:
    """Root hubs are named usbN in sysfs."""
    return device.get("name", "").startswith("usb")


class BoardUsb:
    """The USB part of a board profile: locked (not needed) ports and needed devices."""

    def __init__(self, profile: "dict | None" = None) -> None:
        self.name = ""
        self.locked = []
        self.needed = []
        self.listed = []
        if not profile:
            return
        self.name = profile.get("name", "")
        for port in profile.get("usb_ports", []):
            self.listed.append(port["path"])
            if port["needed"]:
                self.needed.append(port)
            else:
                self.locked.append(port["path"])

    def topology_hub(self, device: dict) -> bool:
        """A hub sitting on the path to a board-listed port (e.g. the Pi 4's internal hub)."""
        name = device.get("name", "")
        if device.get("device_class") != "09":
            return False
        for path in self.listed:
            if path.startswith(name + "."):
                return True
        return False

    def needed_port(self, device: dict) -> "dict | None":
        """The needed-port entry the device matches exactly (port and id), if any."""
        for port in self.needed:
            if device.get("name") == port["path"] and pattern_match(port["allow"].lower(),
                                                                     device.get("id", "")):
                return port
        return None


class Policy:
    """Parsed rules plus board constraints: the whole input of a decision."""

    def __init__(self, rules: list, board: "BoardUsb | None" = None, source: str = "") -> None:
        self.rules = rules
        self.board = board or BoardUsb()
        self.source = source

    @classmethod
    def parse(cls, text: str, source: str = "<rules>", board: "BoardUsb | None" = None
              ) -> "Policy":
        """Parse rule text against a board; raises UsbRuleError with file and line."""
        b = board or BoardUsb()
        return cls(parse_rules(text, source, b.locked), b, source)


def _iface(iface: dict, decision: str, reason: str) -> dict:
    return {"interface": iface["name"], "type": iface["type"],
            "types": list(iface.get("types") or [iface["type"]]),
            "decision": decision, "reason": reason}


def _explicit(rule: object, itype: str) -> bool:
    if rule is None or "with-interface" not in rule.attrs:  # type: ignore[attr-defined]
        return False
    op, values = rule.attrs["with-interface"]  # type: ignore[attr-defined]
    if op == "none-of":
        return False
    return any(not v.startswith("*") and pattern_match(v, itype) for v in values)


def _window_covers(w: dict, device: dict) -> bool:
    port = w.get("port") or ""
    if port and not (device.get("name") == port or device.get("name", "").startswith(port + ".")):
        return False
    classes = w.get("classes") or []
    if not classes:
        return True
    return any(t[:2] in classes for t in device_types(device))


def _type_in_window(w: dict, itype: str) -> bool:
    classes = w.get("classes") or []
    return not classes or itype[:2] in classes


def _result(device: dict, decision: str, rule: str, via: str, ifaces: list, window: str = ""
            ) -> dict:
    return {"device": device.get("name", ""), "id": device.get("id", ""),
            "product": device.get("product", ""), "serial": device.get("serial", ""),
            "decision": decision, "rule": rule, "via": via, "window": window,
            "interfaces": ifaces}


def _all(device: dict, decision: str, reason: str) -> list:
    return [_iface(i, decision, reason) for i in device.get("interfaces", [])]


def _filter_ifaces(device: dict, rule: object, windows: list, by_window: "dict | None") -> list:
    out = []
    for iface in device.get("interfaces", []):
        types = iface.get("types") or [iface["type"]]
        decision, reason = "allow", "allowed"
        for t in types:
            label = restricted_class(t)
            if by_window is not None:
                if not _type_in_window(by_window, t):
                    decision, reason = "block", "class " + t + " not in maintenance window " \
                        + by_window["id"]
                    break
                continue
            if not label or _explicit(rule, t):
                continue
            w = None
            for cand in windows:
                if _window_covers(cand, device) and cand.get("classes") and t[:2] in cand[
                        "classes"]:
                    w = cand
                    break
            if w is None:
                decision, reason = "block", label + " interface (" + t + ") not explicitly allowed"
                break
            reason = "maintenance window " + w["id"]
        out.append(_iface(iface, decision, reason))
    return out


def evaluate(device: dict, policy: Policy, windows: "list | None" = None) -> dict:
    """Decide one device; windows are the *open* maintenance windows (see usbmaint)."""
    windows = windows or []
    board = policy.board
    if is_root_hub(device):
        return _result(device, "allow", "root hub (never de-authorised)", "root-hub",
                       _all(device, "allow", "root hub"))
    name = device.get("name", "")
    if device.get("error"):
        why = "unreadable device: " + device["error"]
        return _result(device, "block", why, "unreadable", _all(device, "block", why))
    if port_locked(name, board.locked):
        why = "board " + board.name + ": port not needed (always de-authorised)"
        return _result(device, "block", why, "board-locked", _all(device, "block", why))
    if board.topology_hub(device):
        ifaces = []
        for i in device.get("interfaces", []):
            ok = all(pattern_match(HUB_TYPE, t) for t in (i.get("types") or [i["type"]]))
            ifaces.append(_iface(i, "allow" if ok else "block",
                                 "hub interface" if ok else "not a hub interface"))
        return _result(device, "allow", "board " + board.name + ": hub on a listed port's path",
                       "board-topology", ifaces)
    needed = board.needed_port(device)
    if needed is not None:
        why = "board " + board.name + ": needed port " + needed["path"] + " (" + needed.get(
            "purpose", "needed") + ")"
        return _result(device, "allow", why, "board-needed",
                       _filter_ifaces(device, None, windows, None))
    for rule in policy.rules:
        if rule_matches(rule, device):
            label = rule.where() + ": " + format_rule(rule)
            if rule.target != "allow":
                return _result(device, rule.target, label, "rule",
                               _all(device, rule.target, "device " + rule.target + "ed"))
            return _result(device, "allow", label, "rule",
                           _filter_ifaces(device, rule, windows, None))
    for w in windows:
        if _window_covers(w, device):
            return _result(device, "allow", "maintenance window " + w["id"] + " opened by "
                           + w.get("principal", "?"), "window",
                           _filter_ifaces(device, None, windows, w), w["id"])
    return _result(device, "block", "default deny (no rule matched)", "default",
                   _all(device, "block", "device blocked"))


def refused(result: dict) -> bool:
    """True when the device or any of its interfaces was refused."""
    if result["decision"] != "allow":
        return True
    return any(i["decision"] != "allow" for i in result["interfaces"])


def learn(devices: list, board: "BoardUsb | None" = None, header: str = "") -> str:
    """A rule file allowing what is present now ("learn, then commit" after review)."""
    board = board or BoardUsb()
    lines = ["# Mamori USB policy (USBGuard rule syntax), learned from the devices present.",
             "# Review every line, then commit it: anything not allowed here is blocked."]
    if header:
        lines.append("# " + header)
    for dev in sorted(devices, key=lambda d: d.get("name", "")):
        name = dev.get("name", "")
        if is_root_hub(dev):
            continue
        if port_locked(name, board.locked):
            lines.append("# skipped " + name + " (" + dev.get("id", "") +
                         "): its port is marked not needed by board " + board.name)
            continue
        if board.topology_hub(dev) or board.needed_port(dev) is not None:
            lines.append("# " + name + " (" + dev.get("id", "") + ") is allowed by board " +
                         board.name)
            continue
        parts = ["allow id " + dev.get("id", "*:*")]
        if dev.get("serial"):
            parts.append("serial " + quote(dev["serial"]))
        if dev.get("product"):
            parts.append("name " + quote(dev["product"]))
        parts.append("via-port " + quote(name))
        types = device_types(dev)
        if len(types) == 1:
            parts.append("with-interface " + types[0])
        elif types:
            parts.append("with-interface { " + " ".join(types) + " }")
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"
