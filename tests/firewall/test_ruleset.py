"""Ruleset generation and semantic comparison (no root needed)."""

from __future__ import annotations

import copy
import json

import pytest

from firmware.common.boards import list_boards, load_board
from firmware.common.ports import ADMIN_HTTPS_PORT, LAN_DEVICE_PORT
from firmware.core.errors import ConfigError
from firmware.gateway.cli.main import main
from firmware.gateway.firewall import compare
from firmware.gateway.firewall.policy import Port, policy_for_board
from firmware.gateway.firewall.ruleset import Ruleset, build


def _rpi4() -> Ruleset:
    return build(policy_for_board(load_board("rpi4")))


def _kernel_json(rs: Ruleset) -> dict:
    """What `nft -j list table inet mamori` prints for RS: handles, metainfo, reordered sets."""
    items: list[dict] = [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
                         {"table": {"family": "inet", "name": "mamori", "handle": 7}}]
    handle = 1
    for name, s in rs.sets.items():
        items.append({"set": {"family": "inet", "table": "mamori", "name": name, "handle": handle,
                              "flags": ["timeout"], "elem": [{"elem": {"val": "10.0.0.9"}}],
                              **s}})
        handle += 1
    for name, c in rs.chains.items():
        items.append({"chain": {"family": "inet", "table": "mamori", "name": name,
                                "handle": handle, **c}})
        handle += 1
    for r in rs.rules:
        expr = copy.deepcopy(r.expr)
        for e in expr:
            right = e.get("match", {}).get("right")
            if isinstance(right, dict) and "set" in right:
                right["set"].reverse()
            elif isinstance(right, list):
                right.reverse()
        items.append({"rule": {"family": "inet", "table": "mamori", "chain": r.chain,
                               "handle": handle, "comment": r.comment, "expr": expr}})
        handle += 1
    return {"nftables": items}


def _diff(rs: Ruleset, doc: dict) -> list[dict]:
    return compare.diff(compare.canonical_expected(rs.expected()),
                        compare.canonical_running(doc, "inet", "mamori"))


def test_rpi4_posture() -> None:
    rs = _rpi4()
    assert rs.chains["input"]["policy"] == "drop"
    assert rs.chains["forward"]["policy"] == "drop"
    assert set(rs.chains) == {"input", "forward"}  # no nat/prerouting: no port forwarding
    text = rs.text
    for word in ("dnat", "redirect", "masquerade", "snat", "1900"):  # 1900: UPnP SSDP
        assert word not in text
    assert text.index("delete table inet mamori") < text.index("table inet mamori {")
    accepts = [r for r in rs.rules if r.expr[-1] == {"accept": None}]
    lan_ports = {(r.comment.split(":")[3]) for r in accepts if ":tcp/" in r.comment}
    assert lan_ports == {f"tcp/{LAN_DEVICE_PORT}", f"tcp/{ADMIN_HTTPS_PORT}"}
    for r in accepts:
        if r.comment not in ("mamori:loopback", "mamori:established", "mamori:icmpv6-nd"):
            assert r.expr[0] == {"match": {"op": "==", "left": {"meta": {"key": "iifname"}},
                                           "right": "wlan0"}}, r.comment
            assert any("limit" in e for e in r.expr), r.comment  # rate-limited
    assert rs.rules[-1].text == 'iifname "eth0" drop'
    assert len({r.comment for r in rs.rules}) == len(rs.rules)


def test_ports_are_parameters() -> None:
    rs = build(policy_for_board(load_board("rpi4"), device_port=9000, admin_port=9443))
    assert "tcp dport 9000" in rs.text and "tcp dport 9443" in rs.text
    assert f"dport {LAN_DEVICE_PORT}" not in rs.text
    assert rs.digest() != _rpi4().digest()
    with pytest.raises(ConfigError):
        policy_for_board(load_board("rpi4"), device_port=9000, admin_port=9000)
    with pytest.raises(ConfigError):
        Port("sctp", 1, "x")
    with pytest.raises(ConfigError):
        Port("tcp", 70000, "x")
    with pytest.raises(ConfigError):
        policy_for_board(load_board("rpi4"), extra_ports=(Port("tcp", LAN_DEVICE_PORT, "dup"),))


def test_interface_in_both_roles_is_refused() -> None:
    rpi4 = load_board("rpi4")
    board = rpi4.with_changes(network=[*rpi4.to_dict()["network"],
                                       {"name": "eth0", "role": "lan", "kind": "ethernet"}])
    with pytest.raises(ConfigError):
        policy_for_board(board)


def test_every_board_renders(capsys: pytest.CaptureFixture[str]) -> None:
    for name in list_boards():
        capsys.readouterr()
        assert main(["firewall", "render", "--board", name, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["table"] == "inet mamori"
        assert data["nft"].startswith("# Mamori")
        assert data["rules"] and all("expr" in r and "text" in r for r in data["rules"])
    sim = build(policy_for_board(load_board("sim")))
    assert [r.comment for r in sim.rules][0] == "mamori:loopback"
    assert not any("wan-drop" in r.comment or "tcp/" in r.comment for r in sim.rules)


def test_unknown_board_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["firewall", "render", "--board", "nope", "--json"]) == 1
    assert "unknown board" in capsys.readouterr().err


def test_kernel_form_matches_despite_formatting() -> None:
    rs = _rpi4()
    assert _diff(rs, _kernel_json(rs)) == []


def test_every_change_is_drift() -> None:
    rs = _rpi4()

    def mutated(fn: object) -> list[dict]:
        doc = _kernel_json(rs)
        fn(doc["nftables"])  # type: ignore[operator]
        return _diff(rs, doc)

    def rules(items: list[dict]) -> list[dict]:
        return [i["rule"] for i in items if "rule" in i]

    def drop_rule(items: list[dict]) -> None:
        items.remove(next(i for i in items if "rule" in i and i["rule"]["comment"]
                          == "mamori:invalid"))

    def add_rule(items: list[dict]) -> None:
        items.append({"rule": {"family": "inet", "table": "mamori", "chain": "input",
                               "handle": 99, "expr": [{"accept": None}]}})

    def swap(items: list[dict]) -> None:
        idx = [n for n, i in enumerate(items) if "rule" in i]
        items[idx[1]], items[idx[2]] = items[idx[2]], items[idx[1]]

    def port(items: list[dict]) -> None:
        r = next(r for r in rules(items) if r["comment"].endswith(f"tcp/{LAN_DEVICE_PORT}"))
        r["expr"][1]["match"]["right"] = 22

    def rate(items: list[dict]) -> None:
        r = next(r for r in rules(items) if r["comment"].endswith(f"tcp/{ADMIN_HTTPS_PORT}"))
        r["expr"][3]["limit"]["rate"] = 100000

    def policy(items: list[dict]) -> None:
        next(i for i in items if "chain" in i)["chain"]["policy"] = "accept"

    def extra_chain(items: list[dict]) -> None:
        items.append({"chain": {"family": "inet", "table": "mamori", "name": "pre",
                                "type": "nat", "hook": "prerouting", "prio": -100}})

    def set_size(items: list[dict]) -> None:
        next(i for i in items if "set" in i)["set"]["size"] = 1

    def extra_obj(items: list[dict]) -> None:
        items.append({"counter": {"family": "inet", "table": "mamori", "name": "c"}})

    def comment(items: list[dict]) -> None:
        rules(items)[0]["comment"] = "mamori:something-else"

    for fn, change in ((drop_rule, "removed"), (add_rule, "added"), (swap, "added"),
                       (port, "added"), (rate, "added"), (policy, "changed"),
                       (extra_chain, "added"), (set_size, "changed"), (extra_obj, "added"),
                       (comment, "removed")):
        d = mutated(fn)
        assert d, fn.__name__
        assert change in {x["change"] for x in d}, (fn.__name__, d)


def test_malformed_kernel_output_is_refused() -> None:
    from firmware.core.errors import ProtocolError

    with pytest.raises(ProtocolError):
        compare.canonical_running({"x": 1}, "inet", "mamori")
    with pytest.raises(ProtocolError):
        compare.canonical_running({"nftables": [{"a": {}, "b": {}}]}, "inet", "mamori")
