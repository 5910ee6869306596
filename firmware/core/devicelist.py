"""The small-site gateway's device list: who may connect, checked with what the port has
(portable).

A MicroPython gateway cannot parse an X.509 certificate or a CRL, nor verify the site CA's
ECDSA signatures. Provisioning, which can, turns the site's records into a compact list for one
gateway (``mamori provision device-list``): the SHA-256 of every IP device certificate the site
issued, with its device id, maker, model and serial; the revoked ones; the allowlist entries;
and a ``number`` that grows with every list, so a gateway refuses an older list (no rollback to
a list from before a revocation). After the TLS handshake (Mbed TLS has checked the certificate
chains to the site CA and that the device holds its key), the gateway hashes the certificate
the handshake showed and judges it here, with the same checks and refusal codes as the CPython
gateway: revoked, unknown, hello identity, allowlisted model, firmware minimum.

Authentication of the list: HMAC-SHA-256 (``firmware.core.hmacsha``, a standard MAC the port
computes with its own SHA-256) under a 32-byte key that provisioning makes for that gateway
alone and delivers only inside its installation bundle (0600, carried by the installer with the
gateway's TLS key). Whoever could read the key on the board could read its TLS key as well; the
MAC keeps a list from being altered on its way (or taken from another gateway). The MAC covers
the exact bytes of the payload text, so no canonical JSON is needed on the port::

    {"format": FORMAT, "gateway_id": ID, "payload": "<JSON text>", "mac": "<hex>"}
"""

import binascii

from firmware.core import allowlist, hmacsha, schema, strictjson
from firmware.core import refusals as rc
from firmware.core.errors import AuthError, IntegrityError, ProtocolError
from firmware.core.ids import ID_FIELD

FORMAT = "mamori-device-list/1"
MAX_LIST = 256 * 1024
KEY_LEN = 32
_HEX = "0123456789abcdef"
_SHA = schema.Str(64, 64, _HEX)
_DEVICE = schema.Obj({"sha256": _SHA, "id": ID_FIELD, "maker": schema.Str(64, 0),
                      "model": schema.Str(64, 0), "serial": schema.Str(64, 1, "0123456789")})
_ENTRY = schema.Obj({"maker": schema.Str(64), "model": schema.Str(64),
                     "transports": schema.List(schema.Str(choices=("ip", "ble", "zigbee")), 3),
                     "min_firmware": schema.Opt(schema.Str(64, 0)),
                     "three_star": schema.Opt(schema.List(schema.Token(1, 32), 16)),
                     "constrained_stack": schema.Opt(schema.Bool())})
PAYLOAD = schema.Obj({"site_id": schema.Token(1, 64), "gateway_id": ID_FIELD,
                      "level": schema.Int(2, 3), "number": schema.Int(1, 2 ** 53),
                      "issued": schema.Str(64), "devices": schema.List(_DEVICE, 4096),
                      "revoked": schema.List(_DEVICE, 4096),
                      "allowlist": schema.List(_ENTRY, 1024)})
DOC = schema.Obj({"format": schema.Const(FORMAT), "gateway_id": ID_FIELD,
                  "payload": schema.Str(MAX_LIST), "mac": schema.Str(64, 64, _HEX)})


def mac_hex(key: bytes, payload_text: str) -> str:
    """The list's MAC: hex HMAC-SHA-256 of the payload text's UTF-8 bytes."""
    return binascii.hexlify(hmacsha.mac(key, payload_text.encode())).decode()


def seal(payload_text: str, key: bytes, gateway_id: str) -> dict:
    """The list document for `gateway_id` (what provisioning writes)."""
    return {"format": FORMAT, "gateway_id": gateway_id, "payload": payload_text,
            "mac": mac_hex(key, payload_text)}


class DeviceList:
    """A verified list: devices by certificate SHA-256, revoked ones, allowlist entries."""

    def __init__(self, payload: dict) -> None:
        self.number = payload["number"]
        self.site_id = payload["site_id"]
        self.gateway_id = payload["gateway_id"]
        self.level = payload["level"]
        self.entries = payload["allowlist"]
        self.devices = {}
        for d in payload["devices"]:
            self.devices[d["sha256"]] = d
        self.revoked = {}
        for d in payload["revoked"]:
            self.revoked[d["sha256"]] = d

    def admit(self, cert_sha256: "str | None", hello: dict) -> dict:
        """The identity of a device whose certificate hashes to `cert_sha256` and that said
        `hello`; AuthError or PolicyError (with its refusal code) saying why not."""
        if not cert_sha256:
            raise AuthError("no client certificate")
        gone = self.revoked.get(cert_sha256)
        if gone is not None:
            raise rc.coded(AuthError("certificate serial %s is revoked" % gone["serial"]),
                           rc.CREDENTIAL_REVOKED)
        dev = self.devices.get(cert_sha256)
        if dev is None:
            raise AuthError("the certificate is not on this gateway's device list #%d (another "
                            "site's, or issued after the list: refresh it with `mamori "
                            "provision device-list`)" % self.number)
        if hello.get("id") != dev["id"]:
            raise rc.coded(AuthError("hello id %r does not match the certificate's device %r"
                                     % (str(hello.get("id"))[:64], dev["id"])),
                           rc.IDENTITY_MISMATCH)
        for field in ("maker", "model"):
            if field in hello and hello[field] != dev[field]:
                raise rc.coded(AuthError("hello %s does not match the certificate" % field),
                               rc.IDENTITY_MISMATCH)
        entry = allowlist.check_model(self.entries, dev["maker"], dev["model"], "ip",
                                      str(hello.get("fw") or ""), self.level)
        return {"id": dev["id"], "maker": dev["maker"], "model": dev["model"],
                "serial": dev["serial"], "transport": "ip", "level": self.level,
                "three_star": entry.get("three_star") or []}


def open_list(raw: bytes, key: bytes, gateway_id: str, min_number: int = 0) -> DeviceList:
    """Verify a list document for this gateway; IntegrityError naming what is wrong.

    `min_number`: the highest list number this gateway already used (an older list is refused).
    """
    try:
        doc = strictjson.loads_object(raw, "device list", 4, MAX_LIST + 4096)
        doc = schema.check(doc, DOC, "device list")  # type: ignore[assignment]
    except ProtocolError as exc:
        raise IntegrityError("the device list is malformed: " + exc.message,
                             "write it again with `mamori provision device-list`")
    if doc["gateway_id"] != gateway_id:
        raise IntegrityError("the device list is for gateway %r, not %r"
                             % (doc["gateway_id"], gateway_id))
    if len(key) != KEY_LEN or not hmacsha.equal(
            binascii.unhexlify(mac_hex(key, doc["payload"])), binascii.unhexlify(doc["mac"])):
        raise IntegrityError("the device list does not verify (altered, or made for another "
                             "gateway)", "write it again with `mamori provision device-list`")
    try:
        payload = schema.check(strictjson.loads_object(doc["payload"], "device list payload",
                                                       6, MAX_LIST), PAYLOAD,
                               "device list payload")
    except ProtocolError as exc:
        raise IntegrityError("the device list is malformed: " + exc.message)
    if payload["gateway_id"] != gateway_id:  # type: ignore[index]
        raise IntegrityError("the device list's payload is for another gateway")
    if payload["number"] < min_number:  # type: ignore[index]
        raise IntegrityError("device list #%d is older than #%d, which this gateway already "
                             "used (rollback refused)" % (payload["number"],  # type: ignore[index]
                                                          min_number))
    return DeviceList(payload)  # type: ignore[arg-type]
