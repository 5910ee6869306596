"""Semantic comparison of the running `inet mamori` table with the expected one.

Both sides are reduced to the same canonical structure: handles, metainfo, set elements
(runtime meter state) and the order of set members are dropped; rule order is kept, because
in a firewall the order of rules is meaning. Any changed, added or removed rule, chain, set or
other object is drift.
"""

from __future__ import annotations

import json
from difflib import SequenceMatcher
from typing import Any

from firmware.core.errors import ProtocolError

CHAIN_KEYS = ("type", "hook", "prio", "policy")
SET_KEYS = ("type", "size", "timeout")


def _sorted_members(value: Any) -> Any:
    # Members of an anonymous set or a flag list are unordered; nft prints them in its own order.
    if isinstance(value, dict) and isinstance(value.get("set"), list):
        return {"set": sorted(value["set"], key=lambda v: json.dumps(v, sort_keys=True))}
    if isinstance(value, list):
        return sorted(value, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def _norm_expr(obj: Any) -> Any:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "right":
                out[k] = _sorted_members(_norm_expr(v))
            else:
                out[k] = _norm_expr(v)
        return out
    if isinstance(obj, list):
        return [_norm_expr(v) for v in obj]
    return obj


def _rule_key(rule: dict) -> str:
    return json.dumps({"comment": rule.get("comment", ""), "expr": _norm_expr(rule["expr"])},
                      sort_keys=True)


def canonical_expected(expected: dict) -> dict:
    """Canonical form of Ruleset.expected()."""
    return {
        "chains": {k: {ck: v.get(ck) for ck in CHAIN_KEYS} for k, v in expected["chains"].items()},
        "sets": {k: {sk: v.get(sk) for sk in SET_KEYS} for k, v in expected["sets"].items()},
        "rules": {k: [_rule_key(r) for r in v] for k, v in expected["rules"].items()},
        "other": [],
    }


def canonical_running(doc: dict, family: str, table: str) -> dict:
    """Canonical form of `nft -j list table FAMILY TABLE` output (parsed JSON)."""
    items = doc.get("nftables")
    if not isinstance(items, list):
        raise ProtocolError("nft JSON output has no 'nftables' list", "nftables version too old?")
    chains: dict = {}
    sets: dict = {}
    rules: dict = {}
    other: list = []
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            raise ProtocolError("unexpected object in nft JSON output")
        kind, body = next(iter(item.items()))
        if kind in ("metainfo", "table"):
            continue
        if body.get("family") != family or body.get("table", table) != table:
            other.append({kind: body})
            continue
        if kind == "chain":
            chains[body["name"]] = {ck: body.get(ck) for ck in CHAIN_KEYS}
            rules.setdefault(body["name"], [])
        elif kind == "set":
            sets[body["name"]] = {sk: body.get(sk) for sk in SET_KEYS}
        elif kind == "rule":
            rules.setdefault(body["chain"], []).append(_rule_key(body))
        else:
            body = {k: v for k, v in body.items() if k != "handle"}
            other.append({kind: body})
    return {"chains": chains, "sets": sets, "rules": rules, "other": other}


def _describe(rule_key: str) -> dict:
    data = json.loads(rule_key)
    return {"comment": data["comment"], "expr": data["expr"]}


def diff(expected: dict, running: dict) -> list[dict]:
    """Differences (empty when identical): each {what, name, change, ...details}."""
    out: list[dict] = []
    for what in ("chains", "sets"):
        exp, run = expected[what], running[what]
        for name in sorted(set(exp) | set(run)):
            if name not in run:
                out.append({"what": what[:-1], "name": name, "change": "removed"})
            elif name not in exp:
                out.append({"what": what[:-1], "name": name, "change": "added",
                            "actual": run[name]})
            elif exp[name] != run[name]:
                out.append({"what": what[:-1], "name": name, "change": "changed",
                            "expected": exp[name], "actual": run[name]})
    for chain in sorted(set(expected["rules"]) | set(running["rules"])):
        exp_rules = expected["rules"].get(chain, [])
        run_rules = running["rules"].get(chain, [])
        sm = SequenceMatcher(a=exp_rules, b=run_rules, autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                continue
            for k in exp_rules[i1:i2]:
                out.append({"what": "rule", "name": chain, "change": "removed",
                            "rule": _describe(k)})
            for k in run_rules[j1:j2]:
                out.append({"what": "rule", "name": chain, "change": "added",
                            "rule": _describe(k)})
    for obj in running["other"]:
        out.append({"what": "object", "name": next(iter(obj)), "change": "added", "actual": obj})
    return out


# Families whose base chains see the packets an `inet` (or ip/ip6) chain sees.
OVERLAP = {"inet": ("inet", "ip", "ip6"), "ip": ("inet", "ip"), "ip6": ("inet", "ip6")}


def foreign_hooks(doc: dict, family: str, hooks: set[str]) -> list[dict]:
    """Base chains of another table on a hook our table uses: each can accept, drop, mangle or
    redirect the packets our chains judge, so its presence is a posture failure."""
    items = doc.get("nftables")
    if not isinstance(items, list):
        raise ProtocolError("nft JSON output has no 'nftables' list", "nftables version too old?")
    out = []
    for item in items:
        chain = item.get("chain") if isinstance(item, dict) else None
        if not isinstance(chain, dict) or not chain.get("hook"):
            continue
        fam = chain.get("family")
        if fam in OVERLAP.get(family, (family,)) and chain["hook"] in hooks:
            out.append({"what": "foreign-chain", "table": f"{fam} {chain.get('table')}",
                        "name": str(chain.get("name")), "change": "hooks " + chain["hook"],
                        "actual": {k: chain.get(k) for k in CHAIN_KEYS}})
    return out
