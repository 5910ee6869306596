"""The access log's hand-off before a resale reset destroys its keys (R2-9, SR3-H-8).

The `reset` verb hands ``handoff(...)`` to ``owner.resale.resale_reset`` as its step 0: it joins
the access log and the WAN outbox, which the reset itself does not know.

1. ``finalize``: the log gets its last record (``gateway.reset``) sealed in a checkpoint marked
   ``final`` and signed, so the platform can verify that the log ended in a reset.
2. ``uplink_bodies``: everything the platform needs, as the WAN uplink carries it: the key
   escrow if it never left (HPKE-sealed to the platform), every checkpoint head, every segment
   up to the final checkpoint in chunks that fit one message.
3. Delivered either over the WAN (``deliver_wan``: through the gateway's own outbox and MQTT
   client; done when the broker has acknowledged every message) or, by an operator, to a
   folder (``escrow``): a JSON-lines file of the same messages that only the platform can
   open (``mamori logs import``).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.common.accesslog.files import LOG_DIR, list_segments, load_bundle
from firmware.common.boardprofile import Board
from firmware.common.fsutil import fsync_dir
from firmware.core.accesslog import framing
from firmware.core.accesslog.encoding import decode
from firmware.core.errors import ConfigError, MamoriError, StateError
from firmware.gateway.accesslog.store import AccessLogStore
from firmware.gateway.identity.install import installed_identity
from firmware.gateway.wan.logupload import PRIO, encode_item, load_recipient

CHUNK = 32 * 1024  # base64 of it stays under the outbox's 64 KiB message limit
MODES = ("wan", "escrow", "discard")


def has_log(state_dir: Path) -> bool:
    """Whether there is an access log to hand off."""
    return bool(list_segments(Path(state_dir) / LOG_DIR))


def finalize(state_dir: Path, mode: str, reason: str = "") -> dict[str, Any]:
    """Seal the log's last record (the reset) in a final checkpoint; a summary of it."""
    store = AccessLogStore(Path(state_dir))
    store.open()
    try:
        params: dict[str, Any] = {"handoff": mode}
        if reason:
            params["discard_reason"] = reason[:200]
        cp = store.finalize({"kind": "gateway.reset", "severity": "notice", "source": "gateway",
                             "action": "reset", "target": "resale", "result": "started",
                             "params": params})
        return {"log_id": store.log_id, "epoch": cp["epoch"], "seq": cp["seq"],
                "segments": len(list_segments(store.dir))}
    finally:
        store.close()


def _heads(data: bytes) -> list[dict[str, Any]]:
    frames, _end, _trouble = framing.scan(data, allow_torn=True)
    return [decode(body) for _off, ftype, body in frames if ftype == framing.CHECKPOINT]


def uplink_bodies(state_dir: Path, gateway_id: str) -> list[dict[str, Any]]:
    """The log as uplink message bodies, in delivery order (escrow, heads, segment chunks)."""
    state_dir = Path(state_dir)
    log_dir = state_dir / LOG_DIR
    info = json.loads((log_dir / "log.json").read_text())
    log_id = str(info["log_id"])
    out: list[dict[str, Any]] = []
    bundle = load_bundle(state_dir, log_dir)
    if bundle is not None:
        body = encode_item({"type": "keys", "log_id": log_id, "bundle": bundle},
                           load_recipient(state_dir), gateway_id)
        if body is not None:  # without a pinned escrow key the keys never leave
            out.append(body)
    segments = [(p.name, p.read_bytes()) for _n, p in list_segments(log_dir)]
    for _name, data in segments:
        for cp in _heads(data):
            out.append({"type": "head", "log_id": log_id, "checkpoint": cp})
    for i, (name, data) in enumerate(segments):
        for off in range(0, max(len(data), 1), CHUNK):
            body = encode_item({"type": "segment", "log_id": log_id, "name": name,
                                "data": data[off:off + CHUNK], "offset": off,
                                "complete": i < len(segments) - 1}, None, gateway_id)
            assert body is not None
            out.append(body)
    return out


def _messages(state_dir: Path) -> tuple[str, list[tuple[str, str, dict[str, Any], int]]]:
    gateway_id = str(installed_identity(state_dir)["gateway_id"])
    bodies = uplink_bodies(state_dir, gateway_id)
    log_id = str(bodies[-1]["log_id"]) if bodies else "none"
    # Stable ids: a second attempt re-sends the same messages; the platform de-duplicates.
    return gateway_id, [("reset-%s-%05d" % (log_id[:16], i), "logs", b, PRIO[b["type"]])
                        for i, b in enumerate(bodies)]


def escrow(state_dir: Path, folder: Path) -> dict[str, Any]:
    """Write the hand-off messages to FOLDER (an operator's medium), fsynced."""
    from firmware.gateway.wan.service import envelope

    gateway_id, msgs = _messages(state_dir)
    folder = Path(folder)
    if not folder.is_dir():
        raise StateError("escrow folder %s does not exist" % folder, "mount the medium first")
    name = "mamori-log-escrow-%s-%s.jsonl" % (gateway_id, time.strftime("%Y%m%dT%H%M%S")
                                              + "-" + secrets.token_hex(3))
    path = folder / name
    part = folder / (name + ".part")  # renamed once complete: a cut leaves no half escrow
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        for mid, stream, body, prio in msgs:
            f.write(envelope(gateway_id, stream, body, prio, mid)[1] + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)
    fsync_dir(folder)
    return {"handoff": "escrow", "delivered": True, "file": str(path), "messages": len(msgs)}


def deliver_wan(state_dir: Path, board: Board | None, broker_url: str,
                timeout: float = 120.0,
                client_factory: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Send the hand-off through the outbox until the broker acknowledged every message."""
    from firmware.gateway.wan.client import WanClient
    from firmware.gateway.wan.from_install import wan_identity
    from firmware.gateway.wan.queue import OutboundQueue
    from firmware.gateway.wan.service import QUEUE_FILE, envelope, outbox_key

    gateway_id, msgs = _messages(state_dir)
    identity = wan_identity(state_dir, board, broker_url)
    queue = OutboundQueue(Path(state_dir) / QUEUE_FILE, key=outbox_key(state_dir, board))
    client = (client_factory or WanClient)(identity, queue,
                                           status_extra=lambda: {"state": "resale-reset"})
    deadline = time.monotonic() + timeout
    sent = 0
    client.start()
    try:
        batch: list[str] = []
        size = 0
        for i, (mid, stream, body, prio) in enumerate(msgs):
            topic, payload = envelope(gateway_id, stream, body, prio, mid)
            queue.put(mid, topic, payload, prio)
            batch.append(mid)
            size += len(payload)
            if size < queue.budget_bytes // 4 and i < len(msgs) - 1:
                continue
            client.notify()
            while queue.pending(batch):
                if time.monotonic() > deadline:
                    raise StateError(
                        "the access log did not reach the platform at %s (%d of %d messages "
                        "acknowledged; %s)" % (broker_url, sent + len(batch) - len(
                            queue.pending(batch)), len(msgs), client.last_error or "no answer"),
                        "connect the WAN and run the reset again, or as the operator hand "
                        "the log over with --escrow-to DIR")
                time.sleep(0.1)
            sent += len(batch)
            batch, size = [], 0
    finally:
        client.stop()
        queue.close()
    return {"handoff": "wan", "delivered": True, "broker": broker_url, "messages": sent}


def _last_broker(state_dir: Path) -> str | None:
    from firmware.gateway.wan.service import BROKER_FILE

    try:
        url = json.loads((Path(state_dir) / BROKER_FILE).read_text())["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(url)


def handoff(mode: str = "wan", broker: str | None = None, escrow_to: Path | None = None,
            reason: str = "", timeout: float = 120.0) -> Callable[[Path, Board],
                                                                  dict[str, Any]]:
    """The reset's step 0 for MODE: the log reaches the platform (or an operator), or the
    reset stops (MamoriError) with nothing destroyed."""
    if mode not in MODES:
        raise ConfigError("unknown log hand-off %r" % mode)

    def run(state_dir: Path, board: Board) -> dict[str, Any]:
        if not has_log(state_dir):
            return {"handoff": "none", "delivered": False, "reason": "no access log"}
        if mode == "discard":
            if len(reason.strip()) < 10:
                raise ConfigError("discarding the access log needs a real reason "
                                  "(10+ characters)")
            try:
                final: dict[str, Any] = finalize(state_dir, "discard", reason)
            except MamoriError as exc:  # a damaged log is discarded as it is
                final = {"error": exc.message}
            return {"handoff": "discard", "delivered": False, "reason": reason.strip(),
                    "final": final}
        if mode == "escrow":
            if escrow_to is None:
                raise ConfigError("an escrow hand-off needs the folder (--escrow-to DIR)")
            final = finalize(state_dir, "escrow")
            return dict(escrow(state_dir, escrow_to), final=final)
        url = broker or _last_broker(state_dir)
        if url is None:
            raise StateError("the access log must reach the platform before the keys are "
                             "destroyed, and no platform broker is known",
                             "give --broker mqtts://HOST:PORT, or as the operator hand the log "
                             "over with --escrow-to DIR (or --discard-log REASON)")
        final = finalize(state_dir, "wan")
        return dict(deliver_wan(state_dir, board, url, timeout), final=final)

    return run
