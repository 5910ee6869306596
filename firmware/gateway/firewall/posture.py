"""Apply the firewall and check the running kernel (ruleset and listeners) against it."""

from __future__ import annotations

from firmware.gateway.firewall import compare, listeners, nft
from firmware.gateway.firewall.ruleset import FAMILY, TABLE, Ruleset


def apply(ruleset: Ruleset, netns: str | None = None) -> None:
    """Load the ruleset atomically (replacing any previous `inet mamori` table)."""
    nft.load(ruleset.text, netns)


def check_ruleset(ruleset: Ruleset, netns: str | None = None) -> dict:
    """Compare the running table with the expected one: {ok, loaded, drift[], foreign_tables}."""
    doc = nft.list_table(FAMILY, TABLE, netns)
    foreign = ["{} {}".format(*t) for t in nft.list_tables(netns) if t != (FAMILY, TABLE)]
    if doc is None:
        return {"ok": False, "loaded": False, "foreign_tables": foreign,
                "drift": [{"what": "table", "name": f"{FAMILY} {TABLE}",
                           "change": "removed"}]}
    expected = compare.canonical_expected(ruleset.expected())
    running = compare.canonical_running(doc, FAMILY, TABLE)
    drift = compare.diff(expected, running)
    return {"ok": not drift, "loaded": True, "drift": drift, "foreign_tables": foreign}


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
