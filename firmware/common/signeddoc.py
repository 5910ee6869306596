"""Site-signed JSON documents (allowlists, device records, tickets, bundles): ECDSA P-256/SHA-256.

A document is ``{kind, payload, alg, sig}``; the signature covers the canonical JSON (sorted
keys, no spaces) of ``{"kind": kind, "payload": payload}`` so a document of one kind can never
be replayed as another.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from firmware.core import schema
from firmware.core.errors import IntegrityError

SIGNED_ALG = "ecdsa-p256-sha256"
MAX_DEPTH = 32  # as firmware.core.strictjson: every document we verify was decoded by it
DOC = schema.Obj({"kind": schema.Token(1, 64), "payload": schema.Map(schema.Str(64),
                                                                      schema.Any_(), 256),
                  "alg": schema.Const(SIGNED_ALG), "sig": schema.Str(256)})


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, measured without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            items: Any = v.values()
        elif isinstance(v, (list, tuple)):
            items = v
        else:
            continue
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            break
        stack.extend((x, d + 1) for x in items)
    return deepest


def canonical(payload: dict) -> str:
    """Canonical JSON text used for signing (sorted keys, no spaces; bounded, finite)."""
    if _depth(payload) > MAX_DEPTH:
        # json.dumps recurses: refuse before it can hit the interpreter's recursion limit
        raise IntegrityError("signed document is nested deeper than %d levels" % MAX_DEPTH)
    try:
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise IntegrityError("signed document cannot be canonicalised: %s" % str(exc)[:80])


def sign_doc(key: ec.EllipticCurvePrivateKey, kind: str, payload: dict) -> dict:
    """Wrap a payload into a signed document."""
    text = canonical({"kind": kind, "payload": payload})
    sig = key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
    return {"kind": kind, "payload": payload, "alg": SIGNED_ALG,
            "sig": base64.b64encode(sig).decode()}


def verify_doc(cert: x509.Certificate, doc: Any, kind: str) -> dict:
    """Check a signed document's kind and signature against a CA certificate; return payload."""
    if not isinstance(doc, dict) or doc.get("alg") != SIGNED_ALG:
        raise IntegrityError("signed %s is malformed or uses an unknown algorithm" % kind)
    if doc.get("kind") != kind or not isinstance(doc.get("payload"), dict):
        raise IntegrityError("document is not a %s" % kind)
    try:
        schema.check(doc, DOC, kind)
    except schema.FieldError as exc:
        raise IntegrityError("signed %s is malformed: %s" % (kind, exc.message))
    try:
        sig = base64.b64decode(str(doc.get("sig", "")), validate=True)
        pub = cert.public_key()
        if not isinstance(pub, ec.EllipticCurvePublicKey):
            raise IntegrityError("signer key is not ECDSA")
        pub.verify(sig, canonical({"kind": kind, "payload": doc["payload"]}).encode(),
                   ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        raise IntegrityError("signature on the %s does not verify" % kind,
                             "it was altered or signed by another site")
    return dict(doc["payload"])
