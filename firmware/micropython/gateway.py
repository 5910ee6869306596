"""A minimal gateway loop from the portable core: liveness, access-log chain, USB policy.

Devices (``/state/devices.json``: ``[{"id", "transport", "interval", "level"}]``) send heartbeat
frames (``{"type": "heartbeat", "device": ID}``) over UDP when the port has sockets; without a
network the loop runs and records "no network". Every state change becomes a record in the
chained, tagged access log (``/state/accesslog/000000.seg``); a checkpoint seals the epoch when
the loop stops. The seal key is derived from the installation bundle (HKDF) or drawn from the
port's CSPRNG; without either, the access log stays off and the report says so.
"""

import json
import os

from firmware.core import frames, liveness, usbpolicy
from firmware.core.accesslog import chain, framing
from firmware.core.accesslog.encoding import canonical
from firmware.core.accesslog.writer import NONCE_LEN, ChainWriter, resume
from firmware.core.errors import IntegrityError, MamoriError

LOG_DIR = "accesslog"
SEGMENT = LOG_DIR + "/000000.seg"
# This port has no AEAD: records are chained and tagged but stored unencrypted; the all-zero
# nonce marks such plaintext records for the platform's reader.
PLAIN_NONCE = b"\0" * NONCE_LEN


class AccessLog:
    """Appends chained, tagged records to one segment through the storage adapter."""

    def __init__(self, storage, log_id, key0):
        self.storage = storage
        try:
            os.mkdir(storage.path(LOG_DIR))
        except OSError:
            pass  # exists
        old = storage.read(SEGMENT)
        if old:
            # Continue the chain of the previous boots (a torn last frame is cut off).
            found, end, trouble = framing.scan(old, True)
            if trouble is not None and trouble[0] != "torn":
                raise IntegrityError("access log " + SEGMENT + " is damaged: " + trouble[1],
                                     "keep it for inspection; the log stays off")
            st = resume(found)
            epoch = st["last_epoch"] + 1
            self.writer = ChainWriter(st["header"]["log"],
                                      chain.SealKey(epoch, chain.derive(key0, epoch)),
                                      st["h"], st["next_seq"])
            if end != len(old):
                storage.write(SEGMENT, old[:end])
            hdr = st["header"]
            self.base = {"seg": 0, "seq": hdr["seq"], "prev": hdr["prev"]}
        else:
            self.writer = ChainWriter(log_id, chain.SealKey(0, key0), chain.genesis(log_id), 1)
            storage.write(SEGMENT, self.writer.header(0))
            self.base = {"seg": 0, "seq": 1, "prev": chain.hexs(chain.genesis(log_id))}

    def record(self, fields):
        """Append one record (a dict of event fields)."""
        self.storage.append(SEGMENT, self.writer.record(PLAIN_NONCE, canonical(fields)))

    def seal(self, ts):
        """Close the epoch with a checkpoint (unsigned: the port has no signature key)."""
        frame, cp = self.writer.checkpoint({"ts": ts, "base": self.base}, lambda data: b"")
        self.storage.append(SEGMENT, frame)
        return cp


class MiniGateway:
    """One loop iteration at a time: ``tick()``; time, storage, network injected."""

    def __init__(self, storage, clock, monotonic, net=None, net_why="", key0=None,
                 key_why="", board=None, usb_devices=None):
        self.storage = storage
        self.clock = clock
        self.monotonic = monotonic
        self.net = net
        self.tracker = liveness.LivenessTracker()
        self.decoder = frames.FrameDecoder()
        self.log = None
        if key0 is not None:
            try:
                self.log = AccessLog(storage, "mcu-" + (board or {}).get("name", "board"), key0)
            except MamoriError as exc:
                key0, key_why = None, exc.message
        self.status = {"network": "up" if net is not None else "none: " + net_why,
                       "accesslog": "on" if key0 is not None else "off: " + key_why,
                       "ticks": 0, "records": 0, "devices": 0, "usb": []}
        self._emit("gateway.start", "info", "gateway loop started",
                   {"network": self.status["network"]})
        self._load_devices()
        self._usb(board or {}, usb_devices or [])

    def _emit(self, kind, severity, reason, params=None):
        if self.log is None:
            return
        self.log.record({"kind": kind, "severity": severity, "source": "mcu",
                         "reason": reason, "ts": self.clock(), "params": params or {}})
        self.status["records"] += 1

    def _load_devices(self):
        raw = self.storage.read("devices.json")
        if raw is None:
            return
        now = self.monotonic()
        for d in json.loads(raw):
            self.tracker.register(d["id"], d.get("transport", "lan"), d.get("interval", 60),
                                  d.get("level", 2), now)
        self.status["devices"] = len(self.tracker.devices)

    def _usb(self, board, devices):
        raw = self.storage.read("usb.rules")
        policy = usbpolicy.Policy.parse(raw.decode() if raw else "", "usb.rules",
                                        usbpolicy.BoardUsb(board))
        for dev in devices:
            res = usbpolicy.evaluate(dev, policy)
            self.status["usb"].append({"name": dev.get("name"), "decision": res["decision"]})
            self._emit("usb." + res["decision"], "notice", res["reason"],
                       {"device": dev.get("id", "")})

    def _heard(self, data, now):
        try:
            msgs = self.decoder.feed(data)
        except MamoriError as exc:
            self.decoder = frames.FrameDecoder()
            self._emit("lan.malformed", "warning", exc.message)
            return []
        moves = []
        for m in msgs:
            dev = m.get("device")
            if m.get("type") == "heartbeat" and dev in self.tracker.devices:
                moves += self.tracker.seen(dev, now)
        return moves

    def tick(self):
        """Poll the network, advance liveness, log transitions; returns the transitions."""
        now = self.monotonic()
        moves = []
        if self.net is not None:
            for data in self.net.poll():
                moves += self._heard(data, now)
        moves += self.tracker.tick(now)
        for mv in moves:
            self._emit("device." + mv["to"], "notice", mv["reason"],
                       {"device": mv["device"], "from": mv["from"]})
        self.status["ticks"] += 1
        return moves

    def stop(self):
        """Seal the access log."""
        if self.log is not None:
            self._emit("gateway.stop", "info", "gateway loop stopped")
            self.status["checkpoint"] = self.log.seal(self.clock())["head"]
        return self.status
