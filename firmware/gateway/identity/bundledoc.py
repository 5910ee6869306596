"""The installation bundle's shape, checked before any certificate or signature work (CPython).

An installation bundle is a file the installer hands in: it is decoded by the strict decoder
(size and depth limits, no NaN) and every member gets an exact type here, so a malformed or
hostile bundle ends in an IntegrityError naming the file and the field, never in an exception
from deep inside a certificate parser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware.common.signeddoc import SIGNED_ALG
from firmware.core import schema, strictjson
from firmware.core.errors import IntegrityError, ProtocolError
from firmware.core.ids import ID_FIELD

BUNDLE_KIND = "mamori-install-bundle"
MAX_BUNDLE = 1 << 20
MAX_DEPTH = 12
_PEM = schema.Str(64 * 1024)
_CRL = schema.Str(MAX_BUNDLE)

CHAIN = schema.Obj({"site_ca": _PEM, "root_ca": _PEM})
PAYLOAD = schema.Obj({
    "gateway_id": ID_FIELD,
    "board": schema.Token(1, 64),
    "site_id": schema.Token(1, 64),
    "site_name": schema.Str(128),
    "level": schema.Int(2, 3),
    "issued": schema.Str(64),
    "key_origin": schema.Token(1, 64),
    "certificate": _PEM,
    "ble_static_public": schema.Str(64),
    "secrets": schema.Obj({"tls_key": schema.Opt(schema.Str(16 * 1024)),
                           "ble_static": schema.Opt(schema.Str(64)),
                           # MicroPython boards: the HMAC key of their device lists
                           "device_list_key": schema.Opt(schema.Str(64))}),
    "site_ca": _PEM,
    "root_ca": _PEM,
    "crl": _CRL,
    # a signed document of its own, verified against the site CA when it is loaded
    "allowlist": schema.Map(schema.Str(64), schema.Any_(), 8),
    "platform": schema.Obj({"ca": _PEM, "command_public_key": schema.Str(4096),
                            "log_escrow_public_key": schema.Opt(schema.Str(4096))}),
    "admin": schema.Obj({"hash": schema.Str(512), "must_change": schema.Bool()}),
    # per-device ACL rules, validated by firmware.core.acl.DeviceAcl when they are loaded
    "acl": schema.List(schema.Map(schema.Str(64), schema.Any_(), 8), 4096),
    # the release repository's trusted TUF root (python-tuf verifies it at the first update)
    "release_root": schema.Opt(schema.Map(schema.Str(64), schema.Any_(), 4)),
})
BUNDLE = schema.Obj({"kind": schema.Const(BUNDLE_KIND), "payload": PAYLOAD,
                     "alg": schema.Const(SIGNED_ALG), "sig": schema.Str(256), "chain": CHAIN})


def parse_bundle(raw: bytes, source: Path | str) -> dict[str, Any]:
    """The checked bundle document; IntegrityError naming the file (and the field)."""
    if len(raw) > MAX_BUNDLE:
        raise IntegrityError("%s: bundle is larger than %d bytes" % (source, MAX_BUNDLE))
    try:
        doc = strictjson.loads_object(raw, "bundle", MAX_DEPTH, MAX_BUNDLE)
        if doc.get("kind") != BUNDLE_KIND:
            raise ProtocolError("bundle: field 'kind' is not %r" % BUNDLE_KIND)
        return dict(schema.check(doc, BUNDLE, "bundle"))  # type: ignore[call-overload]
    except ProtocolError as exc:
        raise IntegrityError("%s is not a Mamori installation bundle (%s)" % (source, exc.message),
                             "ask the installer for the bundle `mamori provision gateway` wrote")
