"""Portable tests of the USB policy: rules, evaluator, windows, learn (pytest + MicroPython)."""

from firmware.core.errors import ConfigError, PolicyError, ProtocolError
from firmware.core.usbdesc import build_descriptors, interfaces_from_descriptors
from firmware.core.usbmaint import MaintenanceWindows
from firmware.core.usbpolicy import BoardUsb, Policy, evaluate, learn, refused, set_match
from firmware.core.usbrules import UsbRuleError, format_rule, parse_line, parse_rules
from tests.core.portable import FakeClock, raises

SIM = {
    "name": "sim",
    "usb_ports": [
        {"path": "1-1", "needed": False},
        {"path": "1-2", "needed": True, "purpose": "zigbee radio dongle", "allow": "1a86:55d4"},
        {"path": "1-3", "needed": False},
    ],
}
RPI4 = {
    "name": "rpi4",
    "usb_ports": [
        {"path": "1-1.1", "needed": False},
        {"path": "1-1.3", "needed": True, "purpose": "zigbee", "allow": "1a86:55d4"},
    ],
}


def dev(name: str, vid_pid: str, types: list, serial: str = "", product: str = "",
        device_class: str = "00") -> dict:
    ifaces = []
    for i, t in enumerate(types):
        ifaces.append({"name": name + ":1." + str(i), "type": t, "types": [t]})
    return {"name": name, "id": vid_pid, "serial": serial, "product": product,
            "device_class": device_class, "interfaces": ifaces}


STICK = dev("1-4", "0781:5567", ["08:06:50"], "4C530001", "Cruzer Blade")
KEYBOARD = dev("1-5", "046d:c31c", ["03:01:01", "03:00:00"], "", "USB Keyboard")
NIC = dev("1-6", "0bda:8153", ["ff:ff:00", "02:06:00", "0a:00:00"], "000001", "USB 10/100/1000 LAN")
COMPOSITE = dev("1-7", "1234:abcd", ["03:01:01", "08:06:50"], "X1", "Keyboard+Disk")
DONGLE = dev("1-2", "1a86:55d4", ["ff:00:00"], "", "SONOFF Zigbee 3.0 USB Dongle Plus V2")
ROOT = dev("usb1", "1d6b:0002", ["09:00:00"], "0000:01:00.0", "xHCI Host Controller", "09")


def sim_policy(text: str = "") -> Policy:
    return Policy.parse(text, "rules.conf", BoardUsb(SIM))


def decisions(result: dict) -> list:
    return [i["decision"] for i in result["interfaces"]]


# --- parser ---------------------------------------------------------------------------------

def test_parse_full_syntax_roundtrip() -> None:
    line = ('allow id 1a86:55d4 serial "a \\"q\\" \\\\ b" name "Dongle" via-port "1-2" '
            'with-interface one-of { ff:00:00 03:*:* } label "zigbee"')
    rule = parse_line(line, "f", 1)
    assert rule is not None
    assert rule.target == "allow"
    assert rule.attrs["id"] == ("equals", ["1a86:55d4"])
    assert rule.attrs["serial"] == ("equals", ['a "q" \\ b'])
    assert rule.attrs["with-interface"] == ("one-of", ["ff:00:00", "03:*:*"])
    again = parse_line(format_rule(rule), "f", 1)
    assert again is not None and again.key() == rule.key()


def test_parse_implicit_equals_set_and_comments() -> None:
    rules = parse_rules("# comment\n\n  block with-interface { 08:*:* 03:00:* }\r\n", "f")
    assert len(rules) == 1
    assert rules[0].line == 3
    assert rules[0].attrs["with-interface"][0] == "equals"


def test_malformed_rules_refused_with_file_and_line() -> None:
    bad = [
        ("permit id 1234:5678", "unknown target"),
        ("allow id 12345:5678", "bad id"),
        ("allow id zzzz:5678", "bad id"),
        ('allow id "1234:5678"', "bare value"),
        ("allow serial abc", "double-quoted"),
        ('allow serial "abc', "unterminated"),
        ("allow with-interface 08:*:06", "bad interface type"),
        ("allow with-interface { 08:*:* ", "not closed"),
        ("allow with-interface { }", "empty set"),
        ("allow with-interface one-of 08:*:*", "needs a { ... } set"),
        ('allow via-port "../../x"', "bad port"),
        ("allow id 1234:5678 id 1234:9999", "given twice"),
        ("allow colour blue", "unknown attribute"),
        ('allow hash "abc"', "not supported"),
        ("allow id", "has no value"),
        ('allow serial "\\q"', "bad escape"),
    ]
    for line, expect in bad:
        exc = raises(UsbRuleError, parse_rules, "# ok\n" + line + "\n", "/etc/mamori/usb.rules")
        assert exc.line == 2, line
        assert exc.file == "/etc/mamori/usb.rules"
        assert "/etc/mamori/usb.rules:2" in str(exc), str(exc)
        assert expect in str(exc), (line, str(exc))
        assert isinstance(exc, ConfigError)


def test_contradictory_rules_refused() -> None:
    text = ("allow id 1234:5678 with-interface { 03:*:* ff:*:* }\n"
            "block with-interface { ff:*:* 03:*:* } id 1234:5678\n")
    exc = raises(UsbRuleError, parse_rules, text, "r")
    assert exc.line == 2 and "contradicts line 1" in str(exc)
    # the same rule twice with the same target is harmless
    assert len(parse_rules("allow id 1234:5678\nallow id 1234:5678\n", "r")) == 2


def test_allow_on_locked_port_contradicts_board() -> None:
    exc = raises(UsbRuleError, Policy.parse, 'block id *:*\nallow via-port "1-1.4"\n', "r",
                 BoardUsb({"name": "b", "usb_ports": [{"path": "1-1", "needed": False}]}))
    assert exc.line == 2 and "not needed" in str(exc)


# --- set operators --------------------------------------------------------------------------

def test_set_operators() -> None:
    dev_types = ["03:01:01", "08:06:50"]
    assert set_match("with-interface", "one-of", ["08:*:*"], dev_types)
    assert not set_match("with-interface", "none-of", ["08:*:*"], dev_types)
    assert set_match("with-interface", "all-of", ["08:*:*", "03:00:*"], ["08:06:50", "03:00:01"])
    assert not set_match("with-interface", "equals", ["03:*:*"], dev_types)
    assert set_match("with-interface", "equals", ["03:*:*", "08:*:*"], dev_types)
    assert set_match("with-interface", "equals-ordered", ["03:*:*", "08:*:*"], dev_types)
    assert not set_match("with-interface", "equals-ordered", ["08:*:*", "03:*:*"], dev_types)
    assert set_match("with-interface", "match-all", ["03:*:*", "08:*:*", "ff:*:*"], dev_types)
    assert not set_match("with-interface", "match-all", ["03:*:*"], dev_types)
    assert not set_match("with-interface", "match-all", ["03:*:*"], [])


# --- evaluation -----------------------------------------------------------------------------

def test_default_deny_refuses_stick_keyboard_nic_composite() -> None:
    pol = sim_policy("")
    for d in (STICK, KEYBOARD, NIC, COMPOSITE):
        r = evaluate(d, pol)
        assert r["decision"] == "block", d["name"]
        assert r["via"] == "default"
        assert set(decisions(r)) == {"block"}
        assert refused(r)


def test_dongle_allowed_on_its_port_only() -> None:
    pol = sim_policy("")
    r = evaluate(DONGLE, pol)
    assert r["decision"] == "allow" and r["via"] == "board-needed"
    assert decisions(r) == ["allow"] and not refused(r)
    moved = dev("1-4", "1a86:55d4", ["ff:00:00"])
    assert evaluate(moved, pol)["decision"] == "block"
    spoof = dev("1-2", "1a86:55d5", ["ff:00:00"])
    assert evaluate(spoof, pol)["decision"] == "block"


def test_badusb_dongle_lookalike_gets_no_keyboard() -> None:
    evil = dev("1-2", "1a86:55d4", ["ff:00:00", "03:01:01"])
    r = evaluate(evil, sim_policy(""))
    assert r["decision"] == "allow"
    assert decisions(r) == ["allow", "block"]
    assert refused(r)


def test_root_hub_never_deauthorised_even_by_block_all() -> None:
    r = evaluate(ROOT, sim_policy("block id *:*\n"))
    assert r["decision"] == "allow" and r["via"] == "root-hub"


def test_locked_port_blocked_even_with_allow_all_rule() -> None:
    stick = dev("1-1", "0781:5567", ["08:06:50"])
    r = evaluate(stick, sim_policy("allow id *:* with-interface 08:*:*\n"))
    assert r["decision"] == "block" and r["via"] == "board-locked"


def test_first_match_wins_and_reject() -> None:
    pol = sim_policy("reject with-interface all-of { 08:*:* 03:*:* }\n"
                     "allow id 1234:abcd\n")
    r = evaluate(COMPOSITE, pol)
    assert r["decision"] == "reject" and "rules.conf:1" in r["rule"]
    assert set(decisions(r)) == {"reject"}


def test_allowed_device_restricted_interfaces_need_explicit_class() -> None:
    implicit = evaluate(COMPOSITE, sim_policy("allow id 1234:abcd\n"))
    assert implicit["decision"] == "allow"
    assert decisions(implicit) == ["block", "block"]
    wildcard = evaluate(COMPOSITE, sim_policy("allow id 1234:abcd with-interface match-all "
                                              "{ *:*:* }\n"))
    assert decisions(wildcard) == ["block", "block"]
    hid_only = evaluate(COMPOSITE, sim_policy("allow id 1234:abcd with-interface one-of "
                                              "{ 03:*:* }\n"))
    assert decisions(hid_only) == ["allow", "block"]
    nic = evaluate(NIC, sim_policy("allow id 0bda:8153 with-interface one-of { ff:*:* }\n"))
    assert decisions(nic) == ["allow", "block", "block"]


def test_serial_name_port_attributes() -> None:
    pol = sim_policy('allow id 0781:5567 serial "4C530001" name "Cruzer Blade" via-port "1-4" '
                     "with-interface 08:06:50\n")
    assert evaluate(STICK, pol)["decision"] == "allow"
    other = dev("1-4", "0781:5567", ["08:06:50"], "OTHER", "Cruzer Blade")
    assert evaluate(other, pol)["decision"] == "block"
    elsewhere = dev("1-5", "0781:5567", ["08:06:50"], "4C530001", "Cruzer Blade")
    assert evaluate(elsewhere, pol)["decision"] == "block"


def test_rpi4_internal_hub_allowed_as_topology() -> None:
    board = BoardUsb(RPI4)
    hub = dev("1-1", "2109:3431", ["09:00:00"], "", "USB2.0 Hub", "09")
    r = evaluate(hub, Policy([], board))
    assert r["decision"] == "allow" and r["via"] == "board-topology"
    fake_hub = dev("1-1", "2109:3431", ["09:00:00", "08:06:50"], "", "Hub", "09")
    assert decisions(evaluate(fake_hub, Policy([], board))) == ["allow", "block"]
    behind_locked = dev("1-1.1", "046d:c31c", ["03:01:01"])
    assert evaluate(behind_locked, Policy([], board))["via"] == "board-locked"


# --- maintenance windows --------------------------------------------------------------------

def test_hid_window_allows_keyboard_not_composite_storage_and_closes() -> None:
    clock = FakeClock()
    mw = MaintenanceWindows(clock, BoardUsb(SIM).locked)
    w = mw.open("alice", 600, classes=["hid"], reason="replace keyboard")
    pol = sim_policy("")
    r = evaluate(KEYBOARD, pol, mw.active())
    assert r["decision"] == "allow" and r["window"] == w["id"]
    assert decisions(r) == ["allow", "allow"]
    c = evaluate(COMPOSITE, pol, mw.active())
    assert c["decision"] == "allow" and decisions(c) == ["allow", "block"]
    assert evaluate(STICK, pol, mw.active())["decision"] == "block"
    clock.advance(600)
    assert mw.active() == []
    assert [x["id"] for x in mw.expire()] == [w["id"]]
    assert evaluate(KEYBOARD, pol, mw.active())["decision"] == "block"


def test_port_window_and_locked_port_never_opens() -> None:
    clock = FakeClock()
    mw = MaintenanceWindows(clock, BoardUsb(SIM).locked)
    raises(PolicyError, mw.open, "alice", 600, "1-1")
    raises(PolicyError, mw.open, "alice", 600, "1-3")
    raises(PolicyError, mw.open, "", 600, "1-4")
    raises(PolicyError, mw.open, "alice", 0, "1-4")
    raises(PolicyError, mw.open, "alice", 10 ** 6, "1-4")
    raises(PolicyError, mw.open, "alice", 60)
    raises(ConfigError, mw.open, "alice", 60, "", ["zz"])
    raises(ConfigError, mw.open, "alice", 60, "../x")
    mw.open("alice", 600, "1-4")
    pol = sim_policy("")
    assert evaluate(STICK, pol, mw.active())["decision"] == "allow"
    assert evaluate(KEYBOARD, pol, mw.active())["decision"] == "block"
    locked = dev("1-1", "046d:c31c", ["03:01:01"])
    assert evaluate(locked, pol, mw.active())["decision"] == "block"


def test_explicit_block_beats_window() -> None:
    clock = FakeClock()
    mw = MaintenanceWindows(clock)
    mw.open("alice", 600, "1-4")
    r = evaluate(STICK, sim_policy("block id 0781:*\n"), mw.active())
    assert r["decision"] == "block" and r["via"] == "rule"


def test_window_persistence_validated() -> None:
    clock = FakeClock()
    mw = MaintenanceWindows(clock, ["1-1"])
    mw.open("alice", 60, "1-4")
    again = MaintenanceWindows(clock, ["1-1"])
    again.load(mw.to_list())
    assert len(again.active()) == 1
    raises(ConfigError, again.load, [{"id": "x", "principal": "a", "opened": 0, "expires": 1e9}])
    raises(ConfigError, again.load, [{"id": "x", "principal": "a", "port": "1-1",
                                      "opened": 0, "expires": 10}])
    raises(ConfigError, again.load, [{"id": "x", "opened": 0, "expires": 10}])


# --- learn ----------------------------------------------------------------------------------

def test_learn_then_commit_roundtrip() -> None:
    board = BoardUsb(SIM)
    locked = dev("1-1", "0781:5567", ["08:06:50"])
    present = [ROOT, DONGLE, KEYBOARD, STICK, locked,
               dev("1-8", "abcd:0001", ["ff:00:00"], 'we"ird\\', "Tab\there")]
    text = learn(present, board)
    assert "usb1" not in text
    assert "# skipped 1-1" in text
    pol = Policy.parse(text, "learned.rules", board)
    assert len(pol.rules) == 3
    for d in (DONGLE, KEYBOARD, STICK, present[-1]):
        r = evaluate(d, pol)
        assert r["decision"] == "allow" and not refused(r), (d["name"], r)
    assert evaluate(locked, pol)["decision"] == "block"
    assert evaluate(NIC, pol)["decision"] == "block"
    moved = dev("1-9", "046d:c31c", ["03:01:01", "03:00:00"], "", "USB Keyboard")
    assert evaluate(moved, pol)["decision"] == "block"


# --- descriptors ----------------------------------------------------------------------------

def test_descriptors_parse_and_hidden_alt_setting() -> None:
    raw = build_descriptors(0x1234, 0xABCD, 0, [(3, 1, 1), [(0xFF, 0, 0), (8, 6, 0x50)]])
    ifaces = interfaces_from_descriptors("1-7", raw)
    assert [i["name"] for i in ifaces] == ["1-7:1.0", "1-7:1.1"]
    assert ifaces[1]["types"] == ["ff:00:00", "08:06:50"]
    d = {"name": "1-7", "id": "1234:abcd", "interfaces": ifaces}
    r = evaluate(d, sim_policy("allow id 1234:abcd with-interface one-of { 03:*:* ff:*:* }\n"))
    assert decisions(r) == ["allow", "block"]


def test_descriptors_malformed_refused() -> None:
    raw = build_descriptors(1, 2, 0, [(3, 1, 1)])
    raises(ProtocolError, interfaces_from_descriptors, "1-1", raw[:10])
    raises(ProtocolError, interfaces_from_descriptors, "1-1", raw[:-3])
    raises(ProtocolError, interfaces_from_descriptors, "1-1", raw[:18] + b"\x00\x02")
    raises(ProtocolError, interfaces_from_descriptors, "1-1", raw[:18] + raw[27:])
