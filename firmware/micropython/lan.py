"""The small-site gateway's device LAN: mutual TLS on the port's ``ssl`` (Mbed TLS) only.

Devices speak the CPython gateway's protocol (``firmware/core/frames.py``: hello, welcome,
heartbeats, results, local operations, refusals with their codes). The gateway's identity comes
from its installation bundle (certificate and key in PEM, turned into DER by their base64 alone:
nothing is parsed); the site CA is the only trust anchor for device certificates, and a device
without a certificate fails the handshake (``CERT_REQUIRED``).

Admission, with what the port has: while Mbed TLS verifies the chain, ``verify_callback`` hands
over the device's certificate; after the handshake its SHA-256 is judged by the HMAC-signed
device list (``firmware.core.devicelist``: revoked, unknown, hello identity, allowlisted model,
firmware minimum), with the CPython gateway's refusal codes. Every admission and refusal goes to
the access log and the console. One handshake never blocks the loop: sockets are non-blocking
and the handshake advances as bytes arrive; a peer that sends no hello in time is dropped.

Mbed TLS here offers TLS 1.2 only: the LAN offers ECDHE-ECDSA with AES-GCM suites only.
"""

import binascii
import hashlib

from firmware.core import devicelist, frames, strictjson
from firmware.core import refusals as rc
from firmware.core.errors import IntegrityError, MamoriError, ProtocolError
from firmware.core.hello import parse_hello
from firmware.core.sessionmsg import parse_message

LAN_PORT = 8883  # as the Linux gateway (firmware/common/ports.py)
SUITES = ["TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384"]
BUNDLE = "installation.bundle"
DEVICE_LIST = "device-list.json"
LIST_SEEN = "device-list.seen"  # the highest list number used (no rollback)
HELLO_TIMEOUT = 10.0
MAX_CONNS = 8
READ_CHUNK = 2048
MAX_BUNDLE = 1 << 20


def pem_der(text):
    """The DER inside one PEM block (its base64 body; nothing is parsed)."""
    body = []
    inside = False
    for line in str(text).split("\n"):
        line = line.strip()
        if line.startswith("-----BEGIN "):
            inside = True
        elif line.startswith("-----END "):
            break
        elif inside and line:
            body.append(line)
    if not body:
        raise IntegrityError("no PEM block where a certificate or key was expected")
    return binascii.a2b_base64("".join(body))


def identity(storage):
    """(identity, "") from the installation bundle, or (None, why not)."""
    raw = storage.read(BUNDLE)
    if raw is None:
        return None, "no installation bundle"
    try:
        doc = strictjson.loads_object(raw, "installation bundle", 12, MAX_BUNDLE)
        p = doc["payload"]
        sec = p.get("secrets") or {}
        ident = {"gateway_id": p["gateway_id"], "site_id": p["site_id"], "level": p["level"],
                 "cert": pem_der(p["certificate"]), "key": pem_der(sec["tls_key"]),
                 "ca": pem_der(p["site_ca"]),
                 "list_key": binascii.a2b_base64(sec["device_list_key"])}
    except (MamoriError, KeyError, TypeError, ValueError) as exc:
        return None, "the installation bundle is not a MicroPython gateway's bundle (%s)" % (
            exc.__class__.__name__,)
    return ident, ""


def device_list(storage, ident):
    """(verified DeviceList, "") or (None, why); remembers the number (no rollback)."""
    raw = storage.read(DEVICE_LIST)
    if raw is None:
        return None, "no device list (mamori provision device-list, then flash deploy)"
    seen = storage.read(LIST_SEEN)
    try:
        low = int(seen) if seen else 0
    except ValueError:
        low = 0
    try:
        found = devicelist.open_list(raw, ident["list_key"], ident["gateway_id"], low)
    except IntegrityError as exc:
        return None, exc.message
    if found.number > low:
        storage.write(LIST_SEEN, str(found.number).encode())
    return found, ""


def _tls():
    try:
        import tls
        return tls
    except ImportError:
        import ssl
        return ssl


def _peer(addr):
    if isinstance(addr, (tuple, list)):
        return "%s:%s" % (addr[0], addr[1])
    try:
        import socket

        fam, ip, port = socket.sockaddr(addr)
        return "%s:%d" % (socket.inet_ntop(fam, ip), port)
    except Exception:  # a port without sockaddr: the peer is still refused or admitted
        return "?"


def _sha256_hex(data):
    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


class Conn:
    """One device connection: handshake, then hello, then a session."""

    def __init__(self, sock, peer, now):
        self.sock = sock
        self.peer = peer
        self.since = now
        self.last = now
        self.leaf = None
        self.dec = frames.FrameDecoder()
        self.device = None
        self.interval = 0.0


class Lan:
    """The LAN server; ``handler`` (the gateway) hears ``admitted``, ``seen`` and ``event``."""

    def __init__(self, ident, devices, addr, clock):
        import select
        import socket

        self.ident = ident
        self.devices = devices
        self.clock = clock
        self.handler = None
        self.conns = []
        self.refused = 0
        self.admitted = 0
        self._current = None
        mod = _tls()
        ctx = mod.SSLContext(mod.PROTOCOL_TLS_SERVER)
        ctx.verify_mode = mod.CERT_REQUIRED
        ctx.load_verify_locations(ident["ca"])
        ctx.load_cert_chain(ident["cert"], ident["key"])
        ctx.set_ciphers(SUITES)
        ctx.verify_callback = self._keep
        self.ctx = ctx
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(socket.getaddrinfo(addr[0], addr[1])[0][-1])
        self.listener.listen(MAX_CONNS)
        self.listener.setblocking(False)
        self.addr = "%s:%d" % (addr[0], addr[1])
        self.poller = select.poll()
        self.poller.register(self.listener, select.POLLIN)

    def _keep(self, cert, depth):
        # Mbed TLS verifies the chain; the leaf (depth 0) is the device's certificate.
        if depth == 0 and self._current is not None:
            self._current.leaf = bytes(cert)
        return 0  # Mbed TLS's own verdict on the chain stands

    def status(self):
        """What the status shows of the LAN."""
        return {"endpoint": self.addr, "tls": "TLSv1.2 (ECDHE-ECDSA, AES-GCM), client "
                "certificate required", "sessions": len([c for c in self.conns if c.device]),
                "admitted": self.admitted, "refused": self.refused,
                "device_list": self.devices.number}

    # -- the loop ---------------------------------------------------------------------------
    def serve(self, seconds):
        """Serve connections for about `seconds` (returns early on nothing)."""
        end = self.clock() + seconds
        while True:
            left = end - self.clock()
            if left <= 0:
                break
            for obj, _ in self.poller.poll(max(1, int(min(left, 0.25) * 1000))):
                if obj is self.listener:
                    self._accept()
                else:
                    for c in self.conns:
                        if c.sock is obj:
                            self._readable(c)
                            break
            self._expire()

    def close(self):
        """Close every connection and stop listening."""
        for c in list(self.conns):
            self._drop(c)
        self.listener.close()

    def _accept(self):
        try:
            raw, addr = self.listener.accept()
        except OSError:
            return
        peer = _peer(addr)
        if len(self.conns) >= MAX_CONNS:
            raw.close()
            self._refuse(peer, "connection limit of %d reached" % MAX_CONNS)
            return
        raw.setblocking(False)
        try:
            sock = self.ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError) as exc:
            raw.close()
            self._refuse(peer, "TLS setup failed: %s" % _words(exc))
            return
        c = Conn(sock, peer, self.clock())
        self.conns.append(c)
        import select

        self.poller.register(sock, select.POLLIN)

    def _readable(self, c):
        self._current = c
        try:
            data = c.sock.read(READ_CHUNK)
        except (OSError, ValueError) as exc:
            self._drop(c)
            if c.device is None:
                self._refuse(c.peer, tls_failure(exc))
            return
        finally:
            self._current = None
        if data is None:
            return  # the handshake goes on, or a record is not complete yet
        if not data:
            self._drop(c)
            if c.device is None:
                self._refuse(c.peer, "connection closed before hello")
            else:
                self._event("device.disconnected", "info", "closed by the device",
                            {"device": c.device["id"]})
            return
        c.last = self.clock()
        try:
            msgs = c.dec.feed(data)
        except ProtocolError as exc:
            self._drop(c)
            if c.device is None:
                self._refuse(c.peer, "malformed hello: " + exc.message)
            else:
                self._event("lan.protocol", "warning", exc.message, {"device": c.device["id"]})
            return
        for m in msgs:
            if c.device is None:
                if not self._hello(c, m):
                    return
            elif not self._message(c, m):
                return

    def _hello(self, c, msg):
        try:
            hello = parse_hello(msg)
        except ProtocolError as exc:
            self._drop(c)
            self._refuse(c.peer, "malformed hello: " + exc.message)
            return False
        sha = _sha256_hex(c.leaf) if c.leaf else None
        try:
            dev = self.devices.admit(sha, hello)
        except MamoriError as exc:
            code = rc.code_of(exc)
            self._send(c, frames.encode(rc.refusal_message(code)))
            self._drop(c)
            self._refuse(c.peer, exc.message, hello["id"], code)
            return False
        c.device = dev
        c.interval = min(max(float(hello["interval"]), 0.5), 3600.0)
        self._send(c, frames.encode({"type": "welcome", "gateway": self.ident["gateway_id"],
                                     "interval": c.interval}))
        self.admitted += 1
        if self.handler is not None:
            self.handler.admitted(dev, c.interval, c.peer, hello.get("verifies") or [])
        return True

    def _message(self, c, msg):
        try:
            msg = parse_message(msg)
        except ProtocolError as exc:
            self._drop(c)
            self._event("lan.protocol", "warning", "device %s: %s" % (c.device["id"], exc.message),
                        {"device": c.device["id"]})
            return False
        if self.handler is not None:
            self.handler.seen(c.device["id"])
        if msg["type"] == "local":
            self._event("device.local_operation", "notice", msg["action"],
                        {"device": c.device["id"]})
        return True

    def _expire(self):
        now = self.clock()
        for c in list(self.conns):
            if c.device is None and now - c.since > HELLO_TIMEOUT:
                self._drop(c)
                self._refuse(c.peer, "no hello within %.0f s" % HELLO_TIMEOUT)
            elif c.device is not None and now - c.last > max(60.0, 10 * c.interval):
                self._drop(c)
                self._event("device.disconnected", "info", "silent session closed",
                            {"device": c.device["id"]})

    # -- helpers ----------------------------------------------------------------------------
    def _send(self, c, data):
        view = memoryview(data)
        tries = 0
        while len(view) and tries < 100:
            try:
                n = c.sock.write(view)
            except OSError:
                return False
            if n:
                view = view[n:]
            else:
                tries += 1
                import time

                time.sleep(0.01)
        return not len(view)

    def _drop(self, c):
        if c in self.conns:
            self.conns.remove(c)
            try:
                self.poller.unregister(c.sock)
            except (OSError, ValueError):
                pass
        try:
            c.sock.close()
        except OSError:
            pass

    def _refuse(self, peer, reason, principal="", code=""):
        self.refused += 1
        params = {"peer": peer}
        if code:
            params["code"] = code
        if principal:
            params["device"] = principal
        self._event("auth.refused", "alert", reason, params)

    def _event(self, kind, severity, reason, params):
        if self.handler is not None:
            self.handler.event(kind, severity, reason, params)


def _words(exc):
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[1], str):
        return " ".join(args[1].split())
    return str(exc) or exc.__class__.__name__


def tls_failure(exc):
    """A failed handshake in the words of the CPython gateway's refusals."""
    detail = _words(exc)
    code = getattr(exc, "errno", None) or (exc.args[0] if exc.args else None)
    if code in (32, 104):  # EPIPE, ECONNRESET
        return "TLS handshake failed: the device closed the connection (it does not trust " \
               "this gateway's certificate, or gave up)"
    if "NO_CLIENT_CERTIFICATE" in detail:
        return "TLS handshake failed: no client certificate"
    if isinstance(exc, ValueError) or "VERIFY" in detail:
        return "client certificate rejected: %s" % detail
    return "TLS handshake failed: %s" % detail


def open_lan(storage, addr, clock):
    """(Lan, "") when the port has sockets and TLS and the board has its bundle and device
    list; else (None, why)."""
    try:
        import socket  # noqa: F401
    except ImportError:
        return None, "no socket module on this port"
    try:
        _tls()
    except ImportError:
        return None, "no ssl module on this port (the LAN needs mutual TLS)"
    ident, why = identity(storage)
    if ident is None:
        return None, why
    devices, why = device_list(storage, ident)
    if devices is None:
        return None, why
    try:
        return Lan(ident, devices, addr, clock), ""
    except (OSError, ValueError) as exc:
        return None, "cannot serve the LAN on %s:%s: %s" % (addr[0], addr[1], _words(exc))
