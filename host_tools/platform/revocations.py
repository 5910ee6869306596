"""Deliver the site's signed CRL to its gateways over the WAN, and keep it fresh.

The platform publishes ``{"id", "crl"}`` on each gateway's ``crl_push`` down-link; the CRL is signed
by the site CA and numbered, so the message needs no other protection (a gateway refuses a list
that is not its site's, or not newer than the one it holds). Each gateway answers on its ``crl``
up-link: ``installed`` or ``current`` (it already holds exactly this list) count as confirmed,
``refused``/``failed`` (with the reason) or no answer do not.

Freshness: ``resign`` re-signs the list (same revocations, next number, a new lifetime of
``CRL_DAYS``) before pushing; run it on a schedule well inside that lifetime (weekly from cron,
or ``mamori platform revocations … --resign --every 86400``), so no gateway ever sees its list
go stale while the platform works.
"""

from __future__ import annotations

import secrets
from typing import Any

from firmware.core.command_auth import valid_token
from firmware.core.errors import ConfigError
from firmware.gateway.wan import topics
from host_tools.platform.client import PlatformClient
from provisioning.site import Site

CONFIRMED = ("installed", "current")


def gateways_of(site: Site, only: str | None = None) -> list[str]:
    """The site's live (not revoked) gateways, or just `only` (ConfigError if not one of them)."""
    live = [g["id"] for g in site.gateways() if not g.get("revoked")]
    if only is None:
        if not live:
            raise ConfigError("this site has no gateway to deliver the CRL to", str(site.root))
        return live
    if not valid_token(only) or only not in live:
        raise ConfigError("%r is not a live gateway of this site" % only, str(site.root),
                          hint="live gateways: " + (", ".join(live) or "none"))
    return [only]


def push(client: PlatformClient, pem: str, gateways: list[str],
         timeout: float) -> dict[str, dict[str, Any]]:
    """Send the CRL to every gateway; their answers by gateway (``no-answer`` when silent)."""
    start = client.mark()
    sent = {}
    for gw in gateways:
        req_id = "crl-" + secrets.token_hex(8)
        sent[gw] = req_id
        client.publish(topics.down(gw, "crl_push"), {"id": req_id, "crl": pem})

    def answer(m: dict[str, Any]) -> bool:
        gw = m.get("gateway")
        return (m.get("type") == "crl" and isinstance(gw, str) and gw in sent
                and (m.get("body") or {}).get("request_id") == sent[gw])

    found = client.wait_for(answer, timeout, count=len(sent), start=start)
    out: dict[str, dict[str, Any]] = {}
    for m in found:
        out.setdefault(m["gateway"], dict(m["body"]))
    for gw in gateways:
        out.setdefault(gw, {"status": "no-answer",
                            "reason": "no answer within %.0f s" % timeout})
    return out


def confirmed(answers: dict[str, dict[str, Any]]) -> bool:
    """True when every gateway installed the list or already held it."""
    return all(a.get("status") in CONFIRMED for a in answers.values())
