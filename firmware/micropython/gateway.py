"""A minimal gateway loop from the portable core: device LAN, liveness, access-log chain, USB.

Devices connect over mutual TLS only (``firmware/micropython/lan.py``): the device list signed
for this gateway (``firmware.core.devicelist``) says who may, and every device it lists is
tracked for liveness from the start (``registered``), then by its heartbeats in its
authenticated session. Without sockets, TLS, bundle or device list the loop runs without a LAN
and the status says why: there is no unauthenticated way in. Every state change, admission and
refusal becomes a record in the chained, tagged access log (``/state/accesslog/000000.seg``); a
checkpoint seals the epoch when the loop stops. The seal key is derived from the installation
bundle (HKDF) or drawn from the port's CSPRNG; without either, the access log stays off and the
report says so.
"""

import os

from firmware.core import liveness, usbpolicy
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
    """One loop iteration at a time: ``tick()``, then ``wait()``; time, storage, LAN injected."""

    def __init__(self, storage, clock, monotonic, lan=None, lan_why="", key0=None,
                 key_why="", board=None, usb_devices=None, say=None):
        self.storage = storage
        self.clock = clock
        self.monotonic = monotonic
        self.lan = lan
        self.say = say
        self.tracker = liveness.LivenessTracker()
        self.moves = []
        self.log = None
        if key0 is not None:
            try:
                self.log = AccessLog(storage, "mcu-" + (board or {}).get("name", "board"), key0)
            except MamoriError as exc:
                key0, key_why = None, exc.message
        self.status = {"network": "up" if lan is not None else "none: " + lan_why,
                       "accesslog": "on" if key0 is not None else "off: " + key_why,
                       "ticks": 0, "records": 0, "devices": 0, "usb": []}
        self._emit("gateway.start", "info", "gateway loop started",
                   {"network": self.status["network"]})
        if lan is not None:
            lan.handler = self
            self._load_devices(lan.devices)
            self.status["lan"] = lan.status()
        self._usb(board or {}, usb_devices or [])

    def _emit(self, kind, severity, reason, params=None):
        if self.log is None:
            return
        self.log.record({"kind": kind, "severity": severity, "source": "mcu",
                         "reason": reason, "ts": self.clock(), "params": params or {}})
        self.status["records"] += 1

    def _load_devices(self, devices):
        now = self.monotonic()
        for d in devices.devices.values():
            self.tracker.register(d["id"], "ip", 60, devices.level, now)
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

    # -- what the LAN reports (only authenticated devices ever reach admitted/seen) ----------
    def admitted(self, dev, interval, peer, verifies):
        """A device passed the handshake and the device list: track it, log it."""
        now = self.monotonic()
        self.tracker.register(dev["id"], "ip", interval, dev["level"], now)
        self.status["devices"] = len(self.tracker.devices)
        self.event("device.connected", "info", "admitted",
                   {"device": dev["id"], "model": dev["maker"] + "/" + dev["model"],
                    "peer": peer, "tls": "TLSv1.2", "verifies": list(verifies)})
        self.moves += self.tracker.seen(dev["id"], now)

    def seen(self, device_id):
        """A message in an authenticated session."""
        if device_id in self.tracker.devices:
            self.moves += self.tracker.seen(device_id, self.monotonic())

    def event(self, kind, severity, reason, params):
        """An event of the LAN: access log and console."""
        self._emit(kind, severity, reason, params)
        if self.say is not None:
            who = params.get("device") or params.get("peer") or ""
            self.say("lan: %s %s: %s" % (kind, who, reason))

    def tick(self):
        """Advance liveness, log transitions; returns the transitions."""
        now = self.monotonic()
        moves = self.moves + self.tracker.tick(now)
        self.moves = []
        for mv in moves:
            self._emit("device." + mv["to"], "notice", mv["reason"],
                       {"device": mv["device"], "from": mv["from"]})
            if self.say is not None:
                self.say("device %s: %s (%s)" % (mv["device"], mv["to"], mv["reason"]))
        if self.lan is not None:
            self.status["lan"] = self.lan.status()
        self.status["ticks"] += 1
        return moves

    def wait(self, seconds, sleep):
        """Until the next tick: serve the LAN, or just sleep without one."""
        if self.lan is not None:
            self.lan.serve(seconds)
        else:
            sleep(seconds)

    def stop(self):
        """Close the LAN, seal the access log."""
        if self.lan is not None:
            self.lan.close()
        if self.log is not None:
            self._emit("gateway.stop", "info", "gateway loop stopped")
            self.status["checkpoint"] = self.log.seal(self.clock())["head"]
        return self.status
