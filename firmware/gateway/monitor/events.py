"""Map the portable monitors' records (rogue, radio, anomaly) to gateway Events (CPython)."""

from __future__ import annotations

from typing import Any

from firmware.core.events import SOURCES, Event

# admission path -> event source (the neighbour table is the LAN side)
PATH_SOURCE = {"lan": "lan", "ble": "ble", "zigbee": "zigbee", "usb": "usb", "arp": "lan"}


def rogue_event(rec: dict[str, Any]) -> Event:
    """One rogue-pipeline record as an Event (rogue.device / suppressed / blocked / unblocked)."""
    src = PATH_SOURCE.get(rec["path"], "gateway")
    params: dict[str, Any] = {"path": rec["path"]}
    kind = rec["kind"]
    if kind == "rogue":
        params.update(evidence=rec.get("evidence", {}), count=rec.get("count", 1))
        if rec.get("suppressed_before"):
            params["suppressed_before"] = rec["suppressed_before"]
        return Event("rogue.device", "alert", src, principal=rec.get("identity", "")[:128],
                     action="admission", target=rec["source"], result="reported",
                     reason=rec["reason"], params=params)
    if kind == "suppressed":
        params.update(count=rec["count"], blocked=rec.get("blocked", False))
        if "sources" in rec:
            params["sources"] = rec["sources"]
        return Event("rogue.suppressed", "warning", src, action="admission",
                     target=rec["source"], result="suppressed", reason=rec["reason"],
                     params=params)
    if kind == "blocked":
        params.update(duration_s=rec["duration"], blocks=rec["blocks"])
        return Event("rogue.blocked", "alert", src, action="block", target=rec["source"],
                     result="blocked", reason=rec["reason"], params=params)
    params["attempts_while_blocked"] = rec.get("attempts", 0)
    return Event("rogue.unblocked", "notice", src, action="unblock", target=rec["source"],
                 result="unblocked", reason=rec["reason"], params=params)


def radio_event(move: dict[str, Any]) -> Event:
    """A radio watchdog transition as radio.dead / radio.alive / radio.silent."""
    to = move["to"]
    severity = {"dead": "alert", "silent": "warning"}.get(to, "info")
    src = move["radio"] if move["radio"] in SOURCES else "gateway"
    return Event("radio." + to, severity, src, action="liveness", target=move["radio"],
                 result=to, reason=move["reason"],
                 params={"from": move["from"], "latency_s": round(move["latency"], 3),
                         "devices": move["devices"]})


def anomaly_event(rec: dict[str, Any]) -> Event:
    """A commanded-vs-actual finding as device.anomaly / device.anomaly_resolved."""
    if rec["finding"] == "anomaly":
        return Event("device.anomaly", "alert", "gateway", action=rec["action"],
                     target=rec["device"], result=rec["kind"], reason=rec["reason"],
                     params={"diff": rec["diff"]})
    return Event("device.anomaly_resolved", "notice", "gateway", action=rec["action"],
                 target=rec["device"], result="resolved", reason=rec["reason"],
                 params={"kind": rec["kind"], "open_for_s": round(rec["open_for"], 3)})
