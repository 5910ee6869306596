"""Generate the `inet mamori` nftables ruleset: nft text plus the kernel's JSON form of each rule.

Every rule is written twice, side by side: as nft syntax (what `nft -f` loads) and as the JSON
that `nft -j list table` prints for it, so the running ruleset can be compared semantically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from firmware.gateway.firewall.policy import Policy, Port

FAMILY = "inet"
TABLE = "mamori"
ND_TYPES = ("nd-neighbor-advert", "nd-neighbor-solicit", "nd-router-advert")
RATE_SET_SIZE = 4096
RATE_SET_TIMEOUT = 60  # seconds an idle source stays in a per-source meter


@dataclass(frozen=True)
class Rule:
    """One rule: its chain, unique comment, nft text and expected kernel JSON expressions."""

    chain: str
    comment: str
    text: str
    expr: list

    def to_dict(self) -> dict:
        """Plain-data form."""
        return {"chain": self.chain, "comment": self.comment, "text": self.text, "expr": self.expr}


@dataclass(frozen=True)
class Ruleset:
    """The whole table: base chains, meter sets, rules, and the nft script that loads them."""

    policy: Policy
    chains: dict
    sets: dict
    rules: tuple[Rule, ...]

    @property
    def text(self) -> str:
        """nft script: create, delete and redefine the table in one atomic transaction."""
        out = [
            "# Mamori gateway firewall (generated; do not edit: changes are reported as drift)",
            f"table {FAMILY} {TABLE}",
            f"delete table {FAMILY} {TABLE}",
            f"table {FAMILY} {TABLE} {{",
        ]
        for name, s in self.sets.items():
            out.append(f"\tset {name} {{")
            out.append(f"\t\ttype {s['type']}")
            out.append(f"\t\tsize {s['size']}")
            out.append("\t\tflags dynamic,timeout")
            out.append(f"\t\ttimeout {s['timeout']}s")
            out.append("\t}")
        for name, c in self.chains.items():
            out.append(f"\tchain {name} {{")
            out.append(f"\t\ttype {c['type']} hook {c['hook']} priority {c['prio']}; "
                       f"policy {c['policy']};")
            for r in self.rules:
                if r.chain == name:
                    out.append(f'\t\t{r.text} comment "{r.comment}"')
            out.append("\t}")
        out.append("}")
        return "\n".join(out) + "\n"

    def expected(self) -> dict:
        """Canonical structure the running table must equal (see compare.canonical)."""
        return {
            "chains": {k: dict(v) for k, v in self.chains.items()},
            "sets": {k: dict(v) for k, v in self.sets.items()},
            "rules": {
                name: [{"comment": r.comment, "expr": r.expr}
                       for r in self.rules if r.chain == name]
                for name in self.chains
            },
        }

    def to_dict(self) -> dict:
        """render --json output."""
        return {
            "table": f"{FAMILY} {TABLE}",
            "policy": self.policy.to_dict(),
            "chains": self.chains,
            "sets": self.sets,
            "rules": [r.to_dict() for r in self.rules],
            "nft": self.text,
        }

    def digest(self) -> str:
        """Stable fingerprint of the expected ruleset (for status and logs)."""
        import hashlib

        blob = json.dumps(self.expected(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# --- expression builders (kernel JSON shapes as printed by `nft -j`) -------------------------

def _match(left: Any, right: Any, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _iif(name: str) -> dict:
    return _match({"meta": {"key": "iifname"}}, name)


def _payload(proto: str, field: str, value: Any) -> dict:
    return _match({"payload": {"protocol": proto, "field": field}}, value)


def _ct_state(states: list[str]) -> dict:
    return _match({"ct": {"key": "state"}}, states[0] if len(states) == 1 else states, "in")


def _limit(rate: int, burst: int, over: bool = False) -> dict:
    lim: dict = {"rate": rate, "burst": burst, "per": "second"}
    if over:
        lim["inv"] = True
    return {"limit": lim}


ACCEPT: dict = {"accept": None}
DROP: dict = {"drop": None}


def _quote(name: str) -> str:
    return '"' + name + '"'


def _port_rules(iface: str, p: Port) -> list[Rule]:
    base_text = f"iifname {_quote(iface)} {p.proto} dport {p.port} ct state new"
    base = [_iif(iface), _payload(p.proto, "dport", p.port), _ct_state(["new"])]
    rules = []
    for fam, addr in (("v4", "ip"), ("v6", "ip6")):
        setname = _set_name(p, fam)
        rules.append(Rule(
            "input", f"mamori:{p.purpose}:{iface}:{p.key}:per-source-{fam}",
            f"{base_text} update @{setname} {{ {addr} saddr limit rate over "
            f"{p.per_source_rate}/second burst {p.per_source_burst} packets }} drop",
            base + [{"set": {
                "op": "update",
                "elem": {"payload": {"protocol": addr, "field": "saddr"}},
                "set": "@" + setname,
                "stmt": [_limit(p.per_source_rate, p.per_source_burst, over=True)],
            }}, DROP],
        ))
    rules.append(Rule(
        "input", f"mamori:{p.purpose}:{iface}:{p.key}",
        f"{base_text} limit rate {p.rate}/second burst {p.burst} packets accept",
        base + [_limit(p.rate, p.burst), ACCEPT],
    ))
    return rules


def _set_name(p: Port, fam: str) -> str:
    return f"rl_{p.proto}_{p.port}_{fam}"


def build(policy: Policy) -> Ruleset:
    """The ruleset for a policy: default drop in, established/related only, LAN ports only."""
    chains = {
        "input": {"type": "filter", "hook": "input", "prio": 0, "policy": "drop"},
        # No routing through the gateway: no port forwarding, no UPnP-opened paths.
        "forward": {"type": "filter", "hook": "forward", "prio": 0, "policy": "drop"},
    }
    sets: dict = {}
    rules: list[Rule] = [
        Rule("input", "mamori:loopback", 'iifname "lo" accept', [_iif("lo"), ACCEPT]),
        Rule("input", "mamori:invalid", "ct state invalid drop", [_ct_state(["invalid"]), DROP]),
        Rule("input", "mamori:established", "ct state established,related accept",
             [_ct_state(["established", "related"]), ACCEPT]),
        # IPv6 needs neighbour discovery; hop limit 255 proves the sender is on-link.
        Rule("input", "mamori:icmpv6-nd",
             "icmpv6 type {{ {} }} ip6 hoplimit 255 accept".format(", ".join(ND_TYPES)),
             [_payload("icmpv6", "type", {"set": list(ND_TYPES)}),
              _payload("ip6", "hoplimit", 255), ACCEPT]),
    ]
    for iface in policy.lan:
        for proto, fam in (("icmp", "v4"), ("icmpv6", "v6")):
            rules.append(Rule(
                "input", f"mamori:lan-ping:{iface}:{fam}",
                f"iifname {_quote(iface)} {proto} type echo-request "
                f"limit rate {policy.icmp_rate}/second burst {policy.icmp_burst} packets accept",
                [_iif(iface), _payload(proto, "type", "echo-request"),
                 _limit(policy.icmp_rate, policy.icmp_burst), ACCEPT],
            ))
        for p in policy.ports:
            for fam, typ in (("v4", "ipv4_addr"), ("v6", "ipv6_addr")):
                sets[_set_name(p, fam)] = {
                    "type": typ, "size": RATE_SET_SIZE, "timeout": RATE_SET_TIMEOUT,
                }
            rules.extend(_port_rules(iface, p))
    for iface in policy.wan:
        rules.append(Rule("input", "mamori:wan-drop:" + iface,
                          f"iifname {_quote(iface)} drop", [_iif(iface), DROP]))
    return Ruleset(policy=policy, chains=chains, sets=sets, rules=tuple(rules))
