"""Real nftables in test-made namespaces: scans from WAN and LAN, re-apply, tamper detection."""

from __future__ import annotations

import json

import pytest

from firmware.common.boards import load_board
from firmware.common.ports import ADMIN_HTTPS_PORT, LAN_DEVICE_PORT
from firmware.gateway.cli.main import main
from firmware.gateway.firewall import posture
from firmware.gateway.firewall.policy import Port, policy_for_board
from firmware.gateway.firewall.ruleset import build
from tests.firewall.netlab import GW_LAN, GW_WAN, LAN_ADDR, Lab

ALL = "1-65535"
DECLARED = [LAN_DEVICE_PORT, ADMIN_HTTPS_PORT]
UNDECLARED_TCP = [22, 80, 1883, 8080]
UDP = [53, 5683, 9999, LAN_DEVICE_PORT]


def _gateway(lab: Lab) -> None:
    lab.listen(lab.gw, DECLARED + UNDECLARED_TCP, UDP)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    capsys.readouterr()
    rc = main(["firewall", *args, "--json"])
    out = capsys.readouterr().out
    return rc, json.loads(out)


@pytest.mark.serial("a full port scan between namespaces")
def test_wan_scan_finds_nothing_open(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    _gateway(lab)
    lab.listen(lab.lan, [8000], [])
    listed = ",".join(map(str, DECLARED + UNDECLARED_TCP))
    # Control: without the firewall the scanner does see the listeners (the check can fail).
    before = lab.scan(lab.inet, GW_WAN, tcp=listed + ",1-100", udp=",".join(map(str, UDP)))
    assert before["tcp"]["open"] == sorted(DECLARED + UNDECLARED_TCP)
    assert before["udp"]["open"] == sorted(UDP)
    assert lab.scan(lab.inet, LAN_ADDR, tcp="8000")["tcp"]["open"] == [8000]

    rc, res = _cli(capsys, "apply", "--board", "rpi4", "--netns", lab.gw, "--no-listeners")
    assert rc == 0 and res["ok"] and res["applied"]

    wan = lab.scan(lab.inet, GW_WAN, tcp=ALL, udp=ALL)
    assert wan["tcp"] == {"open": [], "closed": 0, "filtered": 65535}
    # Not even an ICMP port-unreachable comes back: the WAN side learns nothing.
    assert wan["udp"] == {"open": [], "closed": [], "silent": 65535}
    # The gateway's LAN address and the LAN host behind it are unreachable from the WAN too
    # (forward chain drops: no port forwarding), although the gateway has ip_forward=1.
    lan_addr = lab.scan(lab.inet, GW_LAN, tcp=listed, udp=",".join(map(str, UDP)))
    assert lan_addr["tcp"]["open"] == [] and lan_addr["udp"]["open"] == []
    assert lab.scan(lab.inet, LAN_ADDR, tcp="8000")["tcp"]["open"] == []


@pytest.mark.serial("a full port scan between namespaces")
def test_lan_scan_finds_only_declared_ports(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    _gateway(lab)
    rc, _ = _cli(capsys, "apply", "--board", "rpi4", "--netns", lab.gw, "--no-listeners")
    assert rc == 0
    res = lab.scan(lab.lan, GW_LAN, tcp=ALL, udp=ALL)
    assert res["tcp"]["open"] == sorted(DECLARED)
    assert res["tcp"]["closed"] == 0  # undeclared ports are dropped, not refused
    assert res["udp"]["open"] == [] and res["udp"]["closed"] == []
    # Declaring a UDP port opens exactly that one (and only from the LAN).
    rs = build(policy_for_board(load_board("rpi4"), extra_ports=(Port("udp", 5683, "coap"),)))
    posture.apply(rs, lab.gw)
    assert posture.check_ruleset(rs, lab.gw)["ok"]
    udp = lab.scan(lab.lan, GW_LAN, udp=ALL)["udp"]
    assert udp["open"] == [5683] and udp["closed"] == []
    assert lab.scan(lab.inet, GW_WAN, udp="5683")["udp"]["open"] == []


def test_reapply_is_idempotent_and_survives_restart(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--board", "rpi4", "--netns", lab.gw, "--no-listeners")
    rc, res = _cli(capsys, "check", *args)
    assert rc == 3 and not res["ruleset"]["loaded"]  # nothing loaded yet: drift
    for _ in range(3):
        rc, res = _cli(capsys, "apply", *args)
        assert rc == 0 and res["ok"]
    listing = lab.nft("-j", "list", "table", "inet", "mamori").stdout
    rules = [o for o in json.loads(listing)["nftables"] if "rule" in o]
    assert len(rules) == len(build(policy_for_board(load_board("rpi4"))).rules)
    # A restart loses the kernel ruleset: check reports it, apply at start restores it.
    lab.nft("flush", "ruleset")
    rc, res = _cli(capsys, "check", *args)
    assert rc == 3 and res["ruleset"]["drift"][0]["what"] == "table"
    rc, _ = _cli(capsys, "apply", *args)
    rc2, res = _cli(capsys, "check", *args)
    assert rc == 0 and rc2 == 0 and res["ok"]
    # Other device ports/boards produce a different expected ruleset: that is drift too.
    rc, res = _cli(capsys, "check", *args, "--device-port", "9883")
    assert rc == 3


TAMPER = [
    ("insert rule", ["insert", "rule", "inet", "mamori", "input", "tcp", "dport", "22",
                     "accept"], "added"),
    ("add rule at end", ["add", "rule", "inet", "mamori", "input", "iifname", "eth0", "udp",
                         "dport", "53", "accept", "comment", '"mamori:wan-drop:eth0"'], "added"),
    ("policy accept", ["add", "chain", "inet", "mamori", "forward",
                       "{ type filter hook forward priority 0 ; policy accept ; }"], "changed"),
    ("extra chain", ["add", "chain", "inet", "mamori", "prerouting",
                     "{ type nat hook prerouting priority -100 ; }"], "added"),
    ("flush chain", ["flush", "chain", "inet", "mamori", "input"], "removed"),
]


def test_tampered_ruleset_is_detected(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--board", "rpi4", "--netns", lab.gw, "--no-listeners")
    for label, cmd, change in TAMPER + [("delete rule", [], "removed")]:
        rc, _ = _cli(capsys, "apply", *args)
        assert rc == 0, label
        if label == "delete rule":
            listing = json.loads(lab.nft("-j", "-a", "list", "chain", "inet", "mamori",
                                         "input").stdout)["nftables"]
            handle = next(o["rule"]["handle"] for o in listing
                          if "rule" in o and o["rule"].get("comment") == "mamori:invalid")
            cmd = ["delete", "rule", "inet", "mamori", "input", "handle", str(handle)]
        lab.nft(*cmd)
        rc, res = _cli(capsys, "check", *args)
        assert rc == 3, label
        changes = {d["change"] for d in res["ruleset"]["drift"]}
        assert change in changes, (label, res["ruleset"]["drift"])
    rc, _ = _cli(capsys, "apply", *args)
    rc2, _ = _cli(capsys, "check", *args)
    assert rc == 0 and rc2 == 0


def test_undeclared_listeners_are_reported(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--board", "rpi4", "--netns", lab.gw)
    lab.listen(lab.gw, DECLARED, [])
    rc, res = _cli(capsys, "apply", *args)
    assert rc == 0 and res["listeners"]["unexpected"] == []
    lab.listen(lab.gw, [2222], [5353])
    rc, res = _cli(capsys, "check", *args)
    assert rc == 3 and res["ruleset"]["ok"]
    assert sorted(u["key"] for u in res["listeners"]["unexpected"]) == ["tcp/2222", "udp/5353"]


FOREIGN = [
    # (label, nft script of a foreign table, whether it hooks a chain our table hooks)
    ("iptables-style ip filter on input",
     "table ip sneaky {\n chain INPUT {\n  type filter hook input priority -10; policy accept;\n"
     "  tcp dport 22 accept\n }\n}\n", True),
    ("inet table on forward",
     "table inet sneaky {\n chain relay {\n  type filter hook forward priority 10; "
     "policy accept;\n }\n}\n", True),
    ("ip6 nat on input",
     "table ip6 sneaky {\n chain in {\n  type nat hook input priority 100;\n }\n}\n", True),
    ("regular chains only", "table inet sneaky {\n chain helper {\n  counter\n }\n}\n", False),
    ("arp table on input", "table arp sneaky {\n chain in {\n  type filter hook input "
     "priority 0; policy accept;\n }\n}\n", False),
]


@pytest.mark.parametrize("label,script,hooks", FOREIGN, ids=[f[0] for f in FOREIGN])
def test_foreign_table_on_our_hooks_fails_the_check(
        lab: Lab, capsys: pytest.CaptureFixture[str], label: str, script: str,
        hooks: bool) -> None:
    args = ("--board", "rpi4", "--netns", lab.gw, "--no-listeners")
    rc, res = _cli(capsys, "apply", *args)
    assert rc == 0 and res["ok"]
    fam = script.split()[1]
    lab.nft("-f", "-", input=script)
    rc, res = _cli(capsys, "check", *args)
    assert f"{fam} sneaky" in res["ruleset"]["foreign_tables"], label
    if hooks:
        assert rc == 3 and not res["ok"], label
        hooked = res["ruleset"]["foreign_hooks"]
        assert hooked and all(h["table"] == f"{fam} sneaky" for h in hooked), hooked
        capsys.readouterr()
        assert main(["firewall", "check", *args]) == 3
        assert f"foreign table {fam} sneaky" in capsys.readouterr().out
    else:
        assert rc == 0 and res["ok"] and res["ruleset"]["foreign_hooks"] == [], label
    lab.nft("delete", "table", fam, "sneaky")
    rc, res = _cli(capsys, "check", *args)
    assert rc == 0 and res["ruleset"]["foreign_tables"] == []
