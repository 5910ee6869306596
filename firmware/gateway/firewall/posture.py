"""Apply the firewall and check the running kernel (ruleset and listeners) against it."""

from __future__ import annotations

from firmware.gateway.firewall import compare, listeners, nft
from firmware.gateway.firewall.ruleset import FAMILY, TABLE, Ruleset


def apply(ruleset: Ruleset, netns: str | None = None) -> None:
    """Load the ruleset atomically (replacing any previous `inet mamori` table)."""
    nft.load(ruleset.text, netns)


def foreign_hooks(ruleset: Ruleset, tables: list[tuple[str, str]],
                  netns: str | None = None) -> list[dict]:
    """Base chains of other tables on the hooks our chains use."""
    hooks = {c["hook"] for c in ruleset.chains.values()}
    out: list[dict] = []
    for family, name in tables:
        if (family, name) == (FAMILY, TABLE):
            continue
        doc = nft.list_table(family, name, netns)
        if doc is not None:  # gone since it was listed
            out += compare.foreign_hooks(doc, FAMILY, hooks)
    return out


def check_ruleset(ruleset: Ruleset, netns: str | None = None) -> dict:
    """Compare the running table with the expected one.

    {ok, loaded, drift[], foreign_tables[], foreign_hooks[]}: another table with a base chain
    on one of our hooks sees the same packets, so it fails the check like drift does.
    """
    doc = nft.list_table(FAMILY, TABLE, netns)
    tables = nft.list_tables(netns)
    foreign = ["{} {}".format(*t) for t in tables if t != (FAMILY, TABLE)]
    hooked = foreign_hooks(ruleset, tables, netns)
    if doc is None:
        return {"ok": False, "loaded": False, "foreign_tables": foreign,
                "foreign_hooks": hooked,
                "drift": [{"what": "table", "name": f"{FAMILY} {TABLE}",
                           "change": "removed"}]}
    expected = compare.canonical_expected(ruleset.expected())
    running = compare.canonical_running(doc, FAMILY, TABLE)
    drift = compare.diff(expected, running)
    return {"ok": not drift and not hooked, "loaded": True, "drift": drift,
            "foreign_tables": foreign, "foreign_hooks": hooked}


def check_listeners(ruleset: Ruleset, netns: str | None = None,
                    allow_loopback: bool = True) -> dict:
    """Listening sockets vs the declared LAN ports."""
    allowed = {p.key for p in ruleset.policy.ports}
    return listeners.compare(listeners.current(netns), allowed, allow_loopback)


def check(ruleset: Ruleset, netns: str | None = None, with_listeners: bool = True) -> dict:
    """Full posture check: {ok, digest, ruleset{...}, listeners{...}}."""
    rs = check_ruleset(ruleset, netns)
    result = {"ok": rs["ok"], "digest": ruleset.digest(), "table": f"{FAMILY} {TABLE}",
              "netns": netns or "", "ruleset": rs}
    if with_listeners:
        ls = check_listeners(ruleset, netns)
        result["listeners"] = ls
        result["ok"] = result["ok"] and ls["ok"]
    return result
